//! A gallery above `exact_max`: the HNSW graph is built in the background, enrolments are
//! inserted into it at once, removals are filtered at once and erased from the files before
//! the call returns, and a restart rebuilds the same answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use likeness_gallery::{Galleries, GalleryConfig, MasterKey, TenantId};

const DIM: usize = 32;

fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn config(dir: &std::path::Path) -> GalleryConfig {
    GalleryConfig {
        data_dir: dir.to_owned(),
        dim: DIM,
        exact_max: 600,
        ..GalleryConfig::default()
    }
}

fn wait_for_graph(g: &Galleries, t: &TenantId) {
    let start = Instant::now();
    while g.stats(t).unwrap().search != "hnsw" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "graph never built"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn graph_gallery_enrols_removes_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::random().unwrap();
    let t = TenantId::parse("acme").unwrap();
    let g = Galleries::open(config(dir.path()), master.clone()).unwrap();
    for p in 0..400u64 {
        g.enroll(&t, &format!("p{p}"), &[vector(2 * p), vector(2 * p + 1)])
            .unwrap();
    }
    wait_for_graph(&g, &t);
    let stats = g.stats(&t).unwrap();
    assert_eq!(stats.templates, 800);
    assert!(stats.memory_bytes > 800 * DIM as u64 * 4);
    // Every person is found from either template, through the graph.
    for p in (0..400u64).step_by(13) {
        let r = g.identify(&t, &[vector(2 * p + 1)], 3, 0.99).unwrap();
        assert_eq!(r[0].len(), 1, "p{p}");
        assert_eq!(r[0][0].person.as_ref(), format!("p{p}"));
    }
    // Enrolment after the build: searchable at once (inserted into the graph).
    g.enroll(&t, "late", &[vector(10_000)]).unwrap();
    assert_eq!(g.stats(&t).unwrap().search, "hnsw");
    let r = g.identify(&t, &[vector(10_000)], 1, 0.99).unwrap();
    assert_eq!(r[0][0].person.as_ref(), "late");
    // Removal: gone from search when the call returns, and from the files.
    assert_eq!(g.remove_person(&t, "p7").unwrap(), 2);
    assert!(
        g.identify(&t, &[vector(14)], 5, -1.0).unwrap()[0]
            .iter()
            .all(|c| c.person.as_ref() != "p7")
    );
    assert!(g.identify(&t, &[vector(15)], 1, 0.99).unwrap()[0].is_empty());
    let before = g.identify(&t, &[vector(99_999)], 5, -1.0).unwrap();
    drop(g);
    // Restart: the files hold 799 templates (the removed ones are not replayed), the graph is
    // built again and answers the same.
    let g = Galleries::open(config(dir.path()), master).unwrap();
    g.preload(&t).unwrap();
    assert_eq!(g.stats(&t).unwrap().templates, 799);
    wait_for_graph(&g, &t);
    assert!(g.identify(&t, &[vector(14)], 1, 0.99).unwrap()[0].is_empty());
    let after = g.identify(&t, &[vector(99_999)], 5, -1.0).unwrap();
    let persons = |v: &Vec<Vec<likeness_gallery::Candidate>>| {
        v[0].iter()
            .map(|c| c.person.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(persons(&before), persons(&after));
    // Removing a quarter of the gallery: the graph is rebuilt over the live rows, searches keep
    // answering throughout and never return a removed person.
    for p in 100..200u64 {
        g.remove_person(&t, &format!("p{p}")).unwrap();
        let r = g.identify(&t, &[vector(2 * p)], 3, -1.0).unwrap();
        assert!(r[0].iter().all(|c| c.person.as_ref() != format!("p{p}")));
    }
    assert_eq!(g.stats(&t).unwrap().templates, 599);
    // Below exact_max / 2 the graph is dropped and search is exact again.
    for p in 200..400u64 {
        g.remove_person(&t, &format!("p{p}")).unwrap();
    }
    let s = g.stats(&t).unwrap();
    assert_eq!(s.templates, 199);
    assert_eq!(s.search, "exact");
    let r = g.identify(&t, &[vector(2 * 42)], 1, 0.99).unwrap();
    assert_eq!(r[0][0].person.as_ref(), "p42");
}
