//! Cross-process tests of the galleries: the real binary, real models and real files —
//! suggestions, tenant isolation, erasure down to the bytes on disk, wrong master key, and
//! acknowledged writes surviving kill -9 in a loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, data, models_dir, root};
use likeness_gallery::storage::{self, Op, Wal};
use likeness_gallery::{MasterKey, TenantId};
use likeness_proto::matcher_v1 as pb;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn start(dir: &Path, extra: &[(&str, &str)]) -> Server {
    let d = dir.to_str().unwrap();
    let mut env = vec![
        ("LIKENESS_MATCHER__GALLERY__DATA_DIR", d),
        ("LIKENESS_MATCHER__GALLERY__MASTER_KEY", KEY),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn face_box(f: &pb::Face) -> pb::Box {
    f.r#box.unwrap()
}

/// Enrolls the single face of an image for a person, through its box.
async fn enroll_image(
    c: &mut pb::matcher_client::MatcherClient<tonic::transport::Channel>,
    tenant: &str,
    person: &str,
    file: &str,
) -> Vec<u64> {
    let img = data(file);
    let a = c
        .analyze(pb::AnalyzeRequest {
            images: vec![pb::ImageInput {
                id: file.into(),
                data: img.clone(),
            }],
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let face = &a.results[0].faces[0];
    c.enroll(pb::EnrollRequest {
        tenant_id: tenant.into(),
        person_id: person.into(),
        templates: vec![],
        faces: vec![pb::FaceRef {
            image: img,
            r#box: Some(face_box(face)),
        }],
    })
    .await
    .unwrap()
    .into_inner()
    .template_ids
}

async fn suggest(
    c: &mut pb::matcher_client::MatcherClient<tonic::transport::Channel>,
    tenant: &str,
    file: &str,
) -> pb::SuggestResponse {
    c.suggest(pb::SuggestRequest {
        tenant_id: tenant.into(),
        image: Some(pb::ImageInput {
            id: file.into(),
            data: data(file),
        }),
        k: 3,
        threshold: 0.0,
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
}

/// Every template readable from the tenant's files with the master key.
fn templates_on_disk(dir: &Path, tenant: &str) -> Vec<(u64, String, Vec<f32>)> {
    let m = MasterKey::from_hex(KEY).unwrap();
    let t = TenantId::parse(tenant).unwrap();
    let tdir = dir.join("tenants").join(tenant);
    let mut out = Vec::new();
    if tdir.join("snapshot").exists() {
        storage::read_snapshot(&tdir.join("snapshot"), &m, &t, |id, p, v| {
            out.push((id, p, v.to_vec()))
        })
        .unwrap();
    }
    if tdir.join("wal").exists() {
        Wal::open(&tdir.join("wal"), &m, &t, |_, op| {
            if let Op::Enroll { id, person, vector } = op {
                out.push((id, person, vector));
            }
        })
        .unwrap();
    }
    out
}

fn all_file_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggest_proposes_enrolled_persons_and_unknown_for_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    let mut c = server.client().await;
    let ids = enroll_image(
        &mut c,
        "acme",
        "pacino",
        "faces_dev/Al_Pacino_1800_crop.jpg",
    )
    .await;
    assert_eq!(ids.len(), 1);
    enroll_image(
        &mut c,
        "acme",
        "molina",
        "faces_dev/Alfred_Molina_3937_crop.jpg",
    )
    .await;

    let s = suggest(&mut c, "acme", "faces_dev/Al_Pacino_1805_crop.jpg").await;
    assert_eq!(s.faces.len(), 1);
    assert_eq!(s.faces[0].person_id, "pacino", "{:?}", s.faces[0]);
    assert!(s.faces[0].score >= 0.45);
    let s = suggest(&mut c, "acme", "faces_dev/Alfred_Molina_3938_crop.jpg").await;
    assert_eq!(s.faces[0].person_id, "molina");
    // A stranger gets no proposal, never the nearest enrolled person.
    let s = suggest(&mut c, "acme", "faces_dev/Alyssa_Milano_113899_crop.jpg").await;
    assert_eq!(s.faces.len(), 1);
    assert_eq!(s.faces[0].person_id, "");
    assert!(s.faces[0].candidates.is_empty());
    // A group photo of strangers: every face unknown.
    let s = suggest(&mut c, "acme", "group/insightface_t1.jpg").await;
    assert_eq!(s.faces.len(), 6);
    assert!(s.faces.iter().all(|f| f.person_id.is_empty()));

    // Identify with raw embeddings gives the same answer.
    let a = c
        .analyze(pb::AnalyzeRequest {
            images: vec![pb::ImageInput {
                id: "x".into(),
                data: data("faces_dev/Al_Pacino_1806_crop.jpg"),
            }],
            options: Some(pb::AnalyzeOptions {
                include_embeddings: true,
                min_score: 0.0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let emb = a.results[0].faces[0].embedding.clone();
    let r = c
        .identify(pb::IdentifyRequest {
            tenant_id: "acme".into(),
            queries: vec![pb::Template { values: emb }],
            k: 2,
            threshold: 0.3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results[0].candidates[0].person_id, "pacino");

    let st = c
        .tenant_stats(pb::TenantStatsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (st.templates, st.persons, st.search.as_str()),
        (2, 2, "exact")
    );

    // Bad requests are named.
    let e = c
        .enroll(pb::EnrollRequest {
            tenant_id: "acme".into(),
            person_id: "x".into(),
            templates: vec![pb::Template {
                values: vec![1.0; 5],
            }],
            faces: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("expected 128 values"),
        "{}",
        e.message()
    );
    let e = c
        .enroll(pb::EnrollRequest {
            tenant_id: "acme".into(),
            person_id: "x".into(),
            templates: vec![],
            faces: vec![pb::FaceRef {
                image: data("group/deepface_couple.jpg"),
                r#box: Some(pb::Box {
                    x1: 0.0,
                    y1: 0.0,
                    x2: 50.0,
                    y2: 50.0,
                }),
            }],
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("no face found at box"),
        "{}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    let mut c = server.client().await;
    let ids = enroll_image(
        &mut c,
        "tenant-a",
        "pacino",
        "faces_dev/Al_Pacino_1800_crop.jpg",
    )
    .await;

    // Tenant B cannot match, list, or remove tenant A's person or templates.
    let s = suggest(&mut c, "tenant-b", "faces_dev/Al_Pacino_1805_crop.jpg").await;
    assert_eq!(s.faces[0].person_id, "");
    let st = c
        .tenant_stats(pb::TenantStatsRequest {
            tenant_id: "tenant-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.templates, 0);
    let r = c
        .remove_person(pb::RemovePersonRequest {
            tenant_id: "tenant-b".into(),
            person_id: "pacino".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.removed, 0);
    let e = c
        .remove_templates(pb::RemoveTemplatesRequest {
            tenant_id: "tenant-b".into(),
            template_ids: ids.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let s = suggest(&mut c, "tenant-a", "faces_dev/Al_Pacino_1805_crop.jpg").await;
    assert_eq!(s.faces[0].person_id, "pacino");

    // Malformed tenant ids are refused, not used as paths.
    for bad in ["../tenant-a", "", "a/b", "tenant a"] {
        let e = c
            .tenant_stats(pb::TenantStatsRequest {
                tenant_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        assert!(e.message().contains("tenant id"), "{}", e.message());
    }
    // Dropping B leaves A alone.
    c.drop_tenant(pb::DropTenantRequest {
        tenant_id: "tenant-b".into(),
    })
    .await
    .unwrap();
    let st = c
        .tenant_stats(pb::TenantStatsRequest {
            tenant_id: "tenant-a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.templates, 1);
    let r = c
        .drop_tenant(pb::DropTenantRequest {
            tenant_id: "tenant-a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.existed);
    assert!(!dir.path().join("tenants/tenant-a").exists());
}

fn pattern_vector(seed: u32) -> Vec<f32> {
    // Distinct pseudo-random values per seed (xorshift); normalised as the matcher does.
    let mut x = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..128)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 5_000.0 - 1.0
        })
        .collect();
    likeness_gallery::gallery::normalise(&v, 128).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_person_leaves_no_byte_of_its_templates_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    let mut c = server.client().await;
    let doomed: Vec<Vec<f32>> = (0..5).map(pattern_vector).collect();
    let kept: Vec<Vec<f32>> = (100..103).map(pattern_vector).collect();
    c.enroll(pb::EnrollRequest {
        tenant_id: "t".into(),
        person_id: "doomed".into(),
        templates: doomed
            .iter()
            .map(|v| pb::Template { values: v.clone() })
            .collect(),
        faces: vec![],
    })
    .await
    .unwrap();
    c.enroll(pb::EnrollRequest {
        tenant_id: "t".into(),
        person_id: "kept".into(),
        templates: kept
            .iter()
            .map(|v| pb::Template { values: v.clone() })
            .collect(),
        faces: vec![],
    })
    .await
    .unwrap();
    // Encrypted at rest: no plaintext vector in any file, but readable with the master key.
    for (path, bytes) in all_file_bytes(dir.path()) {
        for v in doomed.iter().chain(&kept) {
            assert!(
                !contains(&bytes, &le_bytes(&v[..8])),
                "plaintext template in {path}"
            );
        }
        assert!(
            !contains(&bytes, b"doomed"),
            "plaintext person id in {path}"
        );
    }
    let on_disk = templates_on_disk(dir.path(), "t");
    assert_eq!(on_disk.iter().filter(|t| t.1 == "doomed").count(), 5);

    let r = c
        .remove_person(pb::RemovePersonRequest {
            tenant_id: "t".into(),
            person_id: "doomed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.removed, 5);
    // The moment it returns: not matchable, and nothing of it in any file, even decrypted.
    let q = c
        .identify(pb::IdentifyRequest {
            tenant_id: "t".into(),
            queries: doomed
                .iter()
                .map(|v| pb::Template { values: v.clone() })
                .collect(),
            k: 5,
            threshold: -1.0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        q.results
            .iter()
            .flat_map(|r| &r.candidates)
            .all(|c| c.person_id == "kept")
    );
    let on_disk = templates_on_disk(dir.path(), "t");
    assert!(on_disk.iter().all(|t| t.1 == "kept"), "{on_disk:?}");
    assert_eq!(on_disk.len(), 3);
    for (_, _, v) in &on_disk {
        for d in &doomed {
            assert_ne!(v, d);
        }
    }
    // And it stays erased across a restart.
    drop(server);
    let mut server = start(dir.path(), &[]);
    let mut c = server.client().await;
    let st = c
        .tenant_stats(pb::TenantStatsRequest {
            tenant_id: "t".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((st.templates, st.persons), (3, 1));
}

#[test]
fn wrong_master_key_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let run = |key: &str| {
        let grpc = common::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_likeness-matcher"))
            .arg("serve")
            .current_dir(root())
            .env("LIKENESS_MODELS_DIR", models_dir())
            .env("LIKENESS_MATCHER__GALLERY__DATA_DIR", d)
            .env("LIKENESS_MATCHER__GALLERY__MASTER_KEY", key)
            .env(
                "LIKENESS_MATCHER__SERVER__GRPC_ADDR",
                format!("127.0.0.1:{grpc}"),
            )
            .env(
                "LIKENESS_MATCHER__SERVER__METRICS_ADDR",
                format!("127.0.0.1:{}", common::free_port()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Up to 30 s for it to either exit or start serving.
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return Some((status, err));
            }
            // Serving, with the gallery opened (its key check file written).
            if std::net::TcpStream::connect(("127.0.0.1", grpc)).is_ok()
                && dir.path().join("keycheck").exists()
            {
                std::thread::sleep(Duration::from_millis(300));
                if child.try_wait().unwrap().is_some() {
                    continue;
                }
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("neither exited nor served");
    };
    assert!(run(KEY).is_none(), "the right key must start");
    let other = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let (status, err) = run(other).expect("a wrong key must not start");
    assert!(!status.success());
    assert!(err.contains("master key does not match"), "{err}");
    let (status, err) = run("not-hex").expect("a malformed key must not start");
    assert!(!status.success());
    assert!(err.contains("gallery.master_key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(u64, Vec<f32>)> = Vec::new();
    let mut removed: Vec<u64> = Vec::new();
    let mut seed = 1000u32;
    for round in 0..5u64 {
        // Compact often so kills also land during snapshot rewrites.
        let mut server = start(
            dir.path(),
            &[("LIKENESS_MATCHER__GALLERY__SNAPSHOT_EVERY", "7")],
        );
        let mut c = server.client().await;
        // Everything acknowledged before is still there, removals still gone.
        let st = c
            .tenant_stats(pb::TenantStatsRequest {
                tenant_id: "crash".into(),
            })
            .await
            .unwrap()
            .into_inner();
        // An in-flight write cut by the kill may or may not have landed (at most one per round).
        let n = st.templates as usize;
        assert!(
            n >= acked.len() && n <= acked.len() + round as usize,
            "round {round}: {n} templates, {} acknowledged",
            acked.len()
        );
        for (id, v) in &acked {
            let r = c
                .identify(pb::IdentifyRequest {
                    tenant_id: "crash".into(),
                    queries: vec![pb::Template { values: v.clone() }],
                    k: 1,
                    threshold: 0.999,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                r.results[0].candidates.first().map(|c| c.template_id),
                Some(*id),
                "round {round}"
            );
        }
        // Write until killed at a moment that moves every round.
        let kill_after = Duration::from_millis(150 + 97 * round);
        let t0 = std::time::Instant::now();
        loop {
            seed += 1;
            let v = pattern_vector(seed);
            let res = c
                .enroll(pb::EnrollRequest {
                    tenant_id: "crash".into(),
                    person_id: format!("p{seed}"),
                    templates: vec![pb::Template { values: v.clone() }],
                    faces: vec![],
                })
                .await;
            match res {
                Ok(r) => acked.push((r.into_inner().template_ids[0], v)),
                Err(_) => break,
            }
            if seed.is_multiple_of(5) {
                let (id, _) = acked.remove(acked.len() / 2);
                c.remove_templates(pb::RemoveTemplatesRequest {
                    tenant_id: "crash".into(),
                    template_ids: vec![id],
                })
                .await
                .unwrap();
                removed.push(id);
            }
            if t0.elapsed() > kill_after {
                // kill -9 while the next write is in flight.
                let mut c2 = c.clone();
                let v = pattern_vector(seed + 1_000_000);
                let inflight = tokio::spawn(async move {
                    c2.enroll(pb::EnrollRequest {
                        tenant_id: "crash".into(),
                        person_id: "inflight".into(),
                        templates: vec![pb::Template { values: v }],
                        faces: vec![],
                    })
                    .await
                });
                tokio::time::sleep(Duration::from_micros(300)).await;
                server.child.kill().unwrap();
                let _ = server.child.wait();
                if let Ok(Ok(r)) = inflight.await {
                    acked.push((
                        r.into_inner().template_ids[0],
                        pattern_vector(seed + 1_000_000),
                    ));
                }
                break;
            }
        }
        drop(server);
        // Ids of removed templates never come back.
        let on_disk = templates_on_disk(dir.path(), "crash");
        for id in &removed {
            assert!(
                on_disk.iter().all(|t| t.0 != *id),
                "removed template {id} is back on disk"
            );
        }
    }
    assert!(
        acked.len() > 10,
        "too few writes to mean anything: {}",
        acked.len()
    );
}
