//! The matcher client against the real `likeness-matcher serve` process (real models, real
//! photos): unavailable vs bad input, Suggest, Enroll by face box, removal of templates and of
//! a person — after which the matcher no longer suggests them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../src/testing.rs"]
#[allow(dead_code)]
mod testing;

use std::time::{Duration, Instant};

use likeness_control_media::{MatcherClient, MatcherConfig, MediaError};
use testing::{MatcherProcess, data_dir, free_port};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matcher_down_is_unavailable_and_retryable() {
    let port = free_port().unwrap();
    let c = MatcherClient::new(MatcherConfig {
        url: format!("http://127.0.0.1:{port}"),
        connect_timeout_ms: 500,
        request_timeout_ms: 2_000,
        ..MatcherConfig::default()
    })
    .unwrap();
    let t = Instant::now();
    let e = c.suggest("t1", data("photos/img1.jpg")).await.unwrap_err();
    assert!(matches!(e, MediaError::MatcherUnavailable(_)), "{e:?}");
    assert!(e.is_retryable());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(
        c.health().await.unwrap_err(),
        MediaError::MatcherUnavailable(_)
    ));
    let e = MatcherClient::new(MatcherConfig {
        url: "not a url".into(),
        ..MatcherConfig::default()
    })
    .unwrap_err();
    assert_eq!(e.code(), "matcher_config", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggest_enroll_remove_against_the_real_matcher() {
    let gallery = tempfile::tempdir().unwrap();
    let mut m = MatcherProcess::start_any(gallery.path(), KEY)
        .await
        .unwrap();
    let c = MatcherClient::new(m.client_config()).unwrap();
    c.health().await.unwrap();

    // Nobody enrolled: one face, no candidates.
    let enrol_img = data("faces_dev/Al_Pacino_1800_crop.jpg");
    let s = c.suggest("acme", enrol_img.clone()).await.unwrap();
    assert_eq!(s.faces.len(), 1, "{s:?}");
    let f = &s.faces[0];
    assert!(f.candidates.is_empty() && f.person_id.is_none());
    assert_eq!(f.landmarks.len(), 5);
    assert!(f.score > 0.5 && f.bbox[2] > f.bbox[0] && f.bbox[3] > f.bbox[1]);
    assert_eq!(s.model_version, MatcherConfig::default().model_version);

    // Enroll that face by its box; another photo of him is suggested as him.
    let ids = c
        .enroll_face("acme", "person-pacino", enrol_img.clone(), f.bbox)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let other = data("faces_dev/Al_Pacino_1805_crop.jpg");
    let s = c.suggest("acme", other.clone()).await.unwrap();
    assert_eq!(
        s.faces[0].person_id.as_deref(),
        Some("person-pacino"),
        "{s:?}"
    );
    assert_eq!(s.faces[0].candidates[0].template_id, ids[0]);
    // Another tenant sees nothing.
    let s = c.suggest("other", other.clone()).await.unwrap();
    assert!(s.faces[0].candidates.is_empty());

    // Bad input is not retryable.
    let e = c
        .suggest("acme", b"not an image".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(e, MediaError::MatcherBadInput(_)), "{e:?}");
    assert!(!e.is_retryable());
    let e = c
        .enroll_face("acme", "p2", enrol_img.clone(), [0.0, 0.0, 0.0, 0.0])
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    let e = c.suggest("bad tenant/..", other.clone()).await.unwrap_err();
    assert!(matches!(e, MediaError::MatcherBadInput(_)), "{e:?}");

    // RemoveTemplates: the matcher no longer suggests him.
    assert_eq!(c.remove_templates("acme", ids.clone()).await.unwrap(), 1);
    let s = c.suggest("acme", other.clone()).await.unwrap();
    assert!(s.faces[0].candidates.is_empty(), "{s:?}");
    assert_eq!(c.tenant_stats("acme").await.unwrap().0, 0);

    // RemovePerson: enrolled twice, removed at once.
    let a = c
        .enroll_face("acme", "person-pacino", enrol_img.clone(), f.bbox)
        .await
        .unwrap();
    let b = c
        .enroll_templates("acme", "person-x", vec![vec![0.1; 128]])
        .await
        .unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(c.tenant_stats("acme").await.unwrap(), (2, 2));
    assert_eq!(c.remove_person("acme", "person-pacino").await.unwrap(), 1);
    let s = c.suggest("acme", other.clone()).await.unwrap();
    assert!(
        s.faces[0]
            .candidates
            .iter()
            .all(|c| c.person_id != "person-pacino"),
        "{s:?}"
    );
    // Unknown tenant: nothing to remove, not an error.
    assert_eq!(c.remove_person("never-seen", "p").await.unwrap(), 0);

    // The matcher goes away: unavailable; it comes back on the same port: the same client
    // reconnects.
    let port = m.port;
    m.stop();
    let e = c.suggest("acme", other.clone()).await.unwrap_err();
    assert!(matches!(e, MediaError::MatcherUnavailable(_)), "{e:?}");
    let _m2 = MatcherProcess::start(gallery.path(), KEY, port)
        .await
        .unwrap();
    let s = c.suggest("acme", other).await.unwrap();
    assert_eq!(s.faces.len(), 1);
    assert_eq!(c.tenant_stats("acme").await.unwrap(), (1, 1));
}
