//! Cross-process tests: the real `likeness-matcher` binary with the real models, called over
//! gRPC on 127.0.0.1, and its CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use likeness_proto::matcher_v1 as pb;
use tonic::transport::Channel;

mod common;
use common::{Server, data, models_dir, root};

fn img(id: &str, data: Vec<u8>) -> pb::ImageInput {
    pb::ImageInput {
        id: id.into(),
        data,
    }
}

fn truncated_jpeg() -> Vec<u8> {
    let mut b = data("photos/img1.jpg");
    b.truncate(b.len() / 3);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_round_trip_with_per_image_errors_and_server_keeps_serving() {
    let mut server = Server::start(&[]);
    let mut client = server.client().await;

    let req = pb::AnalyzeRequest {
        images: vec![
            img("t1", data("group/insightface_t1.jpg")),
            img("empty", vec![]),
            img("text", b"hello, this is not an image".to_vec()),
            img("trunc", truncated_jpeg()),
            img("pacino", data("faces_dev/Al_Pacino_1800_crop.jpg")),
        ],
        options: Some(pb::AnalyzeOptions {
            include_embeddings: true,
            min_score: 0.0,
        }),
    };
    let res = client.analyze(req).await.unwrap().into_inner().results;
    let ids: Vec<&str> = res.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["t1", "empty", "text", "trunc", "pacino"]);

    let t1 = &res[0];
    assert!(t1.error.is_none(), "{:?}", t1.error);
    assert_eq!((t1.width, t1.height), (1280, 886));
    assert_eq!(t1.faces.len(), 6);
    for f in &t1.faces {
        assert_eq!(f.embedding.len(), 128);
        let norm: f32 = f.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
        assert_eq!(f.landmarks.len(), 5);
        let b = f.r#box.unwrap();
        assert!(b.x1 >= 0.0 && b.y1 >= 0.0 && b.x2 <= 1280.0 && b.y2 <= 886.0 && b.x2 > b.x1);
        assert!(f.quality.unwrap().identifiable);
    }
    let kind = |r: &pb::ImageResult| r.error.as_ref().map(|e| (e.kind, e.message.clone()));
    let (k, m) = kind(&res[1]).unwrap();
    assert_eq!(k, pb::ErrorKind::Empty as i32, "{m}");
    assert!(m.contains("0 bytes"), "{m}");
    let (k, m) = kind(&res[2]).unwrap();
    assert_eq!(k, pb::ErrorKind::UnsupportedFormat as i32, "{m}");
    let (k, m) = kind(&res[3]).unwrap();
    assert_eq!(k, pb::ErrorKind::Corrupt as i32, "{m}");
    assert!(res[1..4].iter().all(|r| r.faces.is_empty()));
    assert!(res[4].error.is_none());
    assert_eq!(res[4].faces.len(), 1);

    // Embeddings are only sent when asked for.
    let res = client
        .analyze(pb::AnalyzeRequest {
            images: vec![img("p", data("faces_dev/Al_Pacino_1800_crop.jpg"))],
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(res.results[0].faces[0].embedding.is_empty());

    // Malformed requests are refused with INVALID_ARGUMENT and do not disturb the server.
    let e = client
        .analyze(pb::AnalyzeRequest {
            images: vec![],
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = client
        .analyze(pb::AnalyzeRequest {
            images: vec![img("x", data("faces_dev/Al_Pacino_1800_crop.jpg"))],
            options: Some(pb::AnalyzeOptions {
                include_embeddings: false,
                min_score: 7.0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("min_score"), "{}", e.message());

    // A message over the size limit is refused; the server still answers afterwards.
    let e = client
        .analyze(pb::AnalyzeRequest {
            images: vec![img("big", vec![0xFF; 70 << 20])],
            options: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{e:?}"
    );
    let res = client
        .analyze(pb::AnalyzeRequest {
            images: vec![img("again", data("group/deepface_couple.jpg"))],
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.results[0].faces.len(), 2);

    // Reflection lists the matcher service.
    let ch = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut refl =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let listed = format!("{:?}", msg.message_response);
    assert!(listed.contains("likeness.matcher.v1.Matcher"), "{listed}");

    // Metrics count what happened.
    let m = server.metrics_text();
    // The CUDA backend runs detection, alignment and embedding as one device call.
    let stages: &[&str] = if likeness_kernels::probe::probe_cuda().usable() {
        &["likeness_matcher_stage_seconds_bucket{stage=\"device\""]
    } else {
        &[
            "likeness_matcher_stage_seconds_bucket{stage=\"detect\"",
            "likeness_matcher_stage_seconds_bucket{stage=\"align\"",
            "likeness_matcher_stage_seconds_bucket{stage=\"embed\"",
        ]
    };
    for name in stages.iter().copied().chain([
        "likeness_matcher_images_total",
        "likeness_matcher_faces_total",
        "likeness_matcher_image_errors_total{kind=\"empty\"} 1",
        "likeness_matcher_image_errors_total{kind=\"corrupt\"} 1",
        "likeness_matcher_batch_size_bucket",
        "likeness_matcher_queue_depth",
        "likeness_matcher_stage_seconds_bucket{stage=\"decode\"",
        "likeness_matcher_requests_total{code=\"invalid_argument\",method=\"Analyze\"} 2",
    ]) {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    // insightface_t1 (1280 px, six faces ~50 px in the 640 view) and the couple (2280 px, two
    // faces ~170 px) are large photos: the CPU pipeline ran their detail views or skipped them
    // and refined their faces; none is over 3840 px, so none was decoded reduced.
    let count = |event: &str| -> u64 {
        let key = format!("likeness_matcher_detection_plan_total{{event=\"{event}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metrics lack {key}:\n{m}"))
    };
    if !likeness_kernels::probe::probe_cuda().usable() {
        let (run, skipped, refined) = (
            count("detail_view_run"),
            count("detail_view_skipped"),
            count("face_refined"),
        );
        assert!(run + skipped >= 2, "run {run}, skipped {skipped}:\n{m}");
        assert!(
            skipped == 0 || refined >= 2,
            "skipped {skipped}, refined {refined}:\n{m}"
        );
        assert_eq!(count("decoded_reduced"), 0, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_stream_tags_results_with_caller_ids() {
    let mut server = Server::start(&[("LIKENESS_MATCHER__SERVER__MAX_STREAM_IN_FLIGHT", "3")]);
    let mut client = server.client().await;
    let files = [
        "photos/img1.jpg",
        "photos/img2.jpg",
        "group/deepface_selfie-many-people.jpg",
        "faces_dev/Adam_Brody_355_crop.jpg",
        "photos/img10.jpg",
        "group/deepface_couple.jpg",
    ];
    let mut msgs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        msgs.push(pb::AnalyzeStreamRequest {
            options: (i == 0).then_some(pb::AnalyzeOptions {
                include_embeddings: true,
                min_score: 0.0,
            }),
            image: Some(img(&format!("id-{i}"), data(f))),
        });
    }
    msgs.push(pb::AnalyzeStreamRequest {
        options: None,
        image: Some(img("bad", b"GIF89a\x01\x00\x01\x00".to_vec())),
    });
    let mut stream = client
        .analyze_stream(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let mut got = std::collections::BTreeMap::new();
    while let Some(m) = stream.message().await.unwrap() {
        let r = m.result.unwrap();
        got.insert(r.id.clone(), r);
    }
    assert_eq!(got.len(), files.len() + 1);
    for i in 0..files.len() {
        let r = &got[&format!("id-{i}")];
        assert!(r.error.is_none(), "{}: {:?}", files[i], r.error);
        assert!(!r.faces.is_empty(), "{}", files[i]);
        assert!(r.faces.iter().all(|f| f.embedding.len() == 128));
    }
    assert_eq!(got["id-2"].faces.len(), 6);
    assert_eq!(got["id-5"].faces.len(), 2);
    let e = got["bad"].error.as_ref().unwrap();
    assert_eq!(e.kind, pb::ErrorKind::UnsupportedFormat as i32);

    // Options after the first message are refused with a clear status.
    let msgs = vec![
        pb::AnalyzeStreamRequest {
            options: None,
            image: Some(img("a", data("photos/img10.jpg"))),
        },
        pb::AnalyzeStreamRequest {
            options: Some(pb::AnalyzeOptions::default()),
            image: Some(img("b", data("photos/img10.jpg"))),
        },
    ];
    let mut stream = client
        .analyze_stream(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let mut saw_error = false;
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::InvalidArgument);
                saw_error = true;
                break;
            }
        }
    }
    assert!(saw_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_resource_exhausted_and_recovers() {
    let mut server = Server::start(&[
        ("LIKENESS_MATCHER__BATCHER__QUEUE_CAPACITY", "4"),
        ("LIKENESS_MATCHER__BATCHER__MAX_BATCH_IMAGES", "4"),
        ("LIKENESS_MATCHER__SERVER__MAX_IMAGES_PER_REQUEST", "4"),
        ("LIKENESS_MATCHER__SERVER__MAX_STREAM_IN_FLIGHT", "4"),
    ]);
    let client = server.client().await;
    let solvay = data("group/solvay_conference_1927.png");
    let mut tasks = Vec::new();
    for t in 0..6 {
        let mut c = client.clone();
        let images: Vec<_> = (0..4)
            .map(|i| img(&format!("{t}-{i}"), solvay.clone()))
            .collect();
        tasks.push(tokio::spawn(async move {
            c.analyze(pb::AnalyzeRequest {
                images,
                options: None,
            })
            .await
        }));
    }
    let mut ok = 0;
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                ok += 1;
                assert!(r.into_inner().results.iter().all(|r| r.faces.len() == 29));
            }
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("queue full"), "{}", s.message());
                exhausted += 1;
            }
        }
    }
    assert!(ok >= 1, "no request was served");
    assert!(
        exhausted >= 1,
        "no request was refused with a queue of 4 and 24 images at once"
    );
    // Once the queue drains, requests are served again.
    let mut c = client.clone();
    let r = c
        .analyze(pb::AnalyzeRequest {
            images: vec![img("after", data("group/deepface_couple.jpg"))],
            options: None,
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().results[0].faces.len(), 2);
}

fn cli(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_likeness-matcher"));
    cmd.args(args)
        .current_dir(root())
        .env("LIKENESS_MODELS_DIR", models_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn cli_analyze_prints_one_json_line_per_file_in_order() {
    let d = root().join("../shared/data");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.jpg");
    std::fs::write(&bad, truncated_jpeg()).unwrap();
    // A 4560 x 3176 JPEG: decoded at a reduced scale, reported at its own size.
    let large = tmp.path().join("large.jpg");
    image::open(d.join("group/deepface_couple.jpg"))
        .unwrap()
        .resize(4560, 3176, image::imageops::FilterType::Triangle)
        .to_rgb8()
        .save(&large)
        .unwrap();
    // More files than lanes: the lines still come in argument order.
    let files = [
        d.join("group/deepface_couple.jpg"),
        bad.clone(),
        tmp.path().join("missing.png"),
        d.join("faces_dev/Al_Pacino_1805_crop.jpg"),
        large.clone(),
        d.join("group/deepface_selfie-many-people.jpg"),
    ];
    let mut args = vec!["analyze", "--embeddings"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = cli(&args, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for (l, n) in lines.iter().zip(&names) {
        assert_eq!(l["file"], n.as_str());
    }
    assert_eq!(
        (&lines[0]["width"], &lines[0]["height"]),
        (&2280.into(), &1588.into())
    );
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 2);
    assert!(lines[0]["error"].is_null());
    let f = &lines[0]["faces"][0];
    assert_eq!(f["box"].as_array().unwrap().len(), 4);
    assert_eq!(f["landmarks"].as_array().unwrap().len(), 5);
    assert_eq!(f["embedding"].as_array().unwrap().len(), 128);
    assert!(f["quality"]["identifiable"].as_bool().unwrap());
    assert!(f["score"].as_f64().unwrap() > 0.7);
    assert_eq!(lines[1]["error_kind"], "corrupt");
    assert!(
        lines[1]["error"].as_str().unwrap().contains("truncated")
            || lines[1]["error"].as_str().unwrap().contains("corrupt")
    );
    assert!(
        lines[2]["error"]
            .as_str()
            .unwrap()
            .contains("cannot read file")
    );
    assert_eq!(lines[3]["faces"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&lines[4]["width"], &lines[4]["height"]),
        (&4560.into(), &3176.into())
    );
    let large_faces = lines[4]["faces"].as_array().unwrap();
    assert_eq!(large_faces.len(), 2);
    // Boxes in the file's pixels: twice those of the original (2280 px wide).
    for (big, small) in large_faces
        .iter()
        .zip(lines[0]["faces"].as_array().unwrap())
    {
        let x = |f: &serde_json::Value| f["box"][0].as_f64().unwrap();
        assert!((x(big) - 2.0 * x(small)).abs() < 12.0, "{big} vs {small}");
    }
    assert_eq!(lines[5]["faces"].as_array().unwrap().len(), 6);
}

#[test]
fn cli_check_config_names_bad_keys_missing_and_tampered_models() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("matcher.toml");
    std::fs::write(&cfg, "[pipeline.detect]\nscore_threshold = 1.5\n").unwrap();
    let out = cli(&["check-config", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pipeline.detect") && err.contains("score_threshold"),
        "{err}"
    );

    // A models directory without the files: the message names the file, hash and source.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = cli(
        &["check-config"],
        &[("LIKENESS_MODELS_DIR", empty.as_os_str())],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("yunet_s_dynamic.onnx")
            && err.contains("daede240")
            && err.contains("github.com"),
        "{err}"
    );

    // A tampered model is refused with both hashes.
    let tampered = tmp.path().join("tampered");
    std::fs::create_dir(&tampered).unwrap();
    for f in ["yunet_s_dynamic.onnx", "mobilefacenet_128d_dynamic.onnx"] {
        std::fs::copy(models_dir().join(f), tampered.join(f)).unwrap();
    }
    let p = tampered.join("mobilefacenet_128d_dynamic.onnx");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xFF;
    std::fs::write(&p, bytes).unwrap();
    let fp32 = std::ffi::OsStr::new("mobilefacenet_128");
    let out = cli(
        &["check-config"],
        &[
            ("LIKENESS_MODELS_DIR", tampered.as_os_str()),
            ("LIKENESS_MATCHER__PIPELINE__EMBEDDER", fp32),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mobilefacenet_128d_dynamic.onnx") && err.contains("74c5a21f"),
        "{err}"
    );

    // The default 8-bit embedder is made by a script: without it the message says how.
    let out = cli(
        &["check-config"],
        &[("LIKENESS_DERIVED_MODELS_DIR", empty.as_os_str())],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mobilefacenet_128d_int8.onnx") && err.contains("deploy/quantize-models.sh"),
        "{err}"
    );

    // The non-commercial detector needs the explicit opt-in.
    let out = cli(
        &["check-config"],
        &[(
            "LIKENESS_MATCHER__PIPELINE__DETECTOR",
            std::ffi::OsStr::new("scrfd_2.5g"),
        )],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("non-commercial"), "{err}");

    let out = cli(&["check-config"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sha256 verified"));
    // One line says which backend `serve` runs and why.
    let gpu = likeness_kernels::probe::probe_cuda().usable();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("# backend="))
        .unwrap_or_else(|| panic!("no backend line in {stdout}"));
    if !gpu {
        assert!(line.starts_with("# backend=cpu: "), "{line}");
        assert!(
            line.contains("not found") || line.contains("no CUDA"),
            "{line}"
        );
        // Insisting on CUDA without a GPU stops with the reason.
        let out = cli(
            &["check-config"],
            &[(
                "LIKENESS_MATCHER__BACKEND__KIND",
                std::ffi::OsStr::new("cuda"),
            )],
        );
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("backend.kind = \"cuda\""), "{err}");
    } else {
        assert!(line.starts_with("# backend=cuda: "), "{line}");
    }
    // The device route refuses a detector it cannot run, with the reason (CPU: not probed).
    let out = cli(
        &["check-config"],
        &[
            (
                "LIKENESS_MATCHER__BACKEND__KIND",
                std::ffi::OsStr::new("cpu"),
            ),
            (
                "LIKENESS_MATCHER__PIPELINE__DETECTOR",
                std::ffi::OsStr::new("yunet_s_640"),
            ),
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("# backend=cpu: requested by backend.kind")
    );
}
