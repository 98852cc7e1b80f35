#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Our graph executor (plan + CPU twin) against ONNX Runtime on the CPU, on the real models and
//! real images: the detector's raw outputs agree closely and decode to the same faces (boxes and
//! landmarks within 1 px), the embedder's vectors have cosine ≥ 0.999 with ORT's; a face's
//! embedding does not depend on the batch it is in; bad models and inputs are refused with
//! messages that name the problem.

mod common;

use common::*;
use likeness_kernels::Error;
use likeness_kernels::graph::{Model, Plan, Step};
use likeness_kernels::twin::graph::{self, Workspace};
use likeness_models::detect::DetectParams;

#[test]
fn both_graphs_load_and_plan_with_folded_shapes_and_fused_activations() {
    let det = Model::load(&models_dir().join(DETECTOR)).unwrap();
    assert_eq!((det.node_count(), det.opset()), (154, 11));
    let plan = Plan::new(&det, &[1, 3, 640, 480]).unwrap();
    // 12 outputs: cls/obj [1, cells, 1], bbox [1, cells, 4], kps [1, cells, 10].
    let dims: Vec<Vec<usize>> = plan.outputs.iter().map(|o| o.dims.clone()).collect();
    let cells = [80 * 60, 40 * 30, 20 * 15];
    for (k, d) in dims.iter().enumerate() {
        let width = [1, 1, 4, 10][k / 3];
        assert_eq!(d, &vec![1, cells[k % 3], width], "output {k}");
    }
    assert_eq!(plan.outputs[0].name, "cls_8");
    let convs = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Conv(_)))
        .count();
    assert_eq!(convs, 53);
    // Every Relu is fused into its convolution; the shape arithmetic produced no steps.
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Activate { .. })),
        "{:?}",
        plan.steps
    );
    assert_eq!(plan.steps.len(), 53 + 4 + 2 + 2 + 12 + 6);
    // Slots are reused: far fewer than steps, and no step reads the slot it writes.
    assert!(
        plan.slots.len() <= plan.outputs.len() + 4,
        "{} slots",
        plan.slots.len()
    );
    for s in &plan.steps {
        assert!(!s.inputs().contains(&s.output()), "{s:?}");
    }

    let emb = Model::load(&models_dir().join(EMBEDDER)).unwrap();
    assert_eq!((emb.node_count(), emb.opset()), (163, 18));
    let plan = Plan::new(&emb, &[5, 3, 112, 112]).unwrap();
    assert_eq!(plan.outputs.len(), 1);
    assert_eq!(plan.outputs[0].dims, vec![5, 128]);
    // 32 Clips and 2 Relus fused: 51 convolutions + 12 residual additions.
    assert_eq!(plan.steps.len(), 51 + 12, "{:?}", plan.steps);
}

#[test]
fn detector_matches_onnx_runtime_on_real_photos() {
    let model = Model::load(&models_dir().join(DETECTOR)).unwrap();
    let mut ort = session(DETECTOR);
    let mut ws = Workspace::default();
    let cases = [
        ("group/solvay_conference_1927.png", 29),
        ("group/insightface_t1.jpg", 6),
        ("group/deepface_selfie-many-people.jpg", 0),
        ("group/deepface_couple.jpg", 2),
        ("photos/img1.jpg", 1),
    ];
    let mut views_checked = 0;
    let mut faces_checked = 0;
    for (rel, min_faces) in cases {
        let img = load(rel);
        let views =
            likeness_models::detect::plan_views(img.width, img.height, &DetectParams::default());
        let mut found = 0;
        for v in &views {
            let dims = [1, 3, v.input_h as usize, v.input_w as usize];
            let input = view_input(&img, v);
            let reference = ort_run(&mut ort, &dims, &input);
            let plan = Plan::new(&model, &dims).unwrap();
            let ours = graph::run(&plan, &input, &mut ws).unwrap();
            assert_eq!(ours.len(), reference.len());
            let what = format!("{rel} {dims:?}");
            assert_outputs_close(&ours, &reference, 2e-3, &what);
            let ours_raw: Vec<Vec<f32>> = ours.into_iter().map(|t| t.data).collect();
            let a = detections(&ours_raw, v, &img);
            let b = detections(&reference, v, &img);
            assert_same_faces(&a, &b, &what);
            found = found.max(a.len());
            faces_checked += a.len();
            views_checked += 1;
        }
        assert!(
            found >= min_faces,
            "{rel}: {found} faces, expected ≥ {min_faces}"
        );
    }
    assert!(views_checked >= 7, "{views_checked} views");
    assert!(faces_checked >= 40, "{faces_checked} faces");
}

#[test]
fn embedder_matches_onnx_runtime_and_batches_do_not_change_a_face() {
    let crops = face_crops();
    assert!(crops.len() >= 9, "{} faces", crops.len());
    let n = crops.len();
    let batch: Vec<f32> = crops.concat();
    let model = Model::load(&models_dir().join(EMBEDDER)).unwrap();
    let plan = Plan::new(&model, &[n, 3, 112, 112]).unwrap();
    let mut ws = Workspace::default();
    let ours = graph::run(&plan, &batch, &mut ws).unwrap();
    let reference = ort_run(&mut session(EMBEDDER), &[n, 3, 112, 112], &batch);
    let (ours, reference) = (&ours[0].data, &reference[0]);
    assert_eq!(ours.len(), n * 128);
    let worst = worst_cosine(ours, reference, 128);
    assert!(worst >= 0.999, "worst cosine {worst}");
    // The third face alone gives bit-for-bit the vector it had in the batch.
    let one = Plan::new(&model, &[1, 3, 112, 112]).unwrap();
    let alone = graph::run(&one, &crops[2], &mut ws).unwrap();
    assert_eq!(alone[0].data, ours[2 * 128..3 * 128].to_vec());
}

#[test]
fn bad_models_and_inputs_are_refused_with_the_reason() {
    let e = Model::from_bytes("junk.onnx", b"\x08\x07not a protobuf at all \xff\xff").unwrap_err();
    assert!(
        matches!(&e, Error::Graph { model, message } if model == "junk.onnx" && message.contains("not an ONNX model")),
        "{e}"
    );
    let e = Model::load(&models_dir().join("missing.onnx")).unwrap_err();
    assert!(e.to_string().contains("missing.onnx"), "{e}");
    let det = Model::load(&models_dir().join(DETECTOR)).unwrap();
    // A 3-D input: the first convolution says it is not NCHW.
    let e = Plan::new(&det, &[3, 640, 640]).unwrap_err();
    assert!(e.to_string().contains("Conv node"), "{e}");
    assert!(e.to_string().contains("not NCHW"), "{e}");
    // Too small for the kernel chain, and an empty dimension.
    assert!(Plan::new(&det, &[1, 3, 0, 64]).is_err());
    let e = Plan::new(&det, &[1, 4, 64, 64]).unwrap_err();
    assert!(e.to_string().contains("do not fit"), "{e}");
    // Input of the wrong length for the plan.
    let plan = Plan::new(&det, &[1, 3, 64, 64]).unwrap();
    let e = graph::run(&plan, &[0.0; 10], &mut Workspace::default()).unwrap_err();
    assert!(e.to_string().contains("needs 12288"), "{e}");
}

#[test]
fn twin_pipeline_finds_the_faces_of_the_cpu_tile_plan_in_chunks() {
    use likeness_kernels::device::DeviceConfig;
    use likeness_kernels::twin::letterbox::ImageRef;
    use likeness_kernels::twin::pipeline::TwinPipeline;
    let det = Model::load(&models_dir().join(DETECTOR)).unwrap();
    let emb = Model::load(&models_dir().join(EMBEDDER)).unwrap();
    let mut cfg = DeviceConfig {
        max_views: 17,
        max_faces: 8,
        ..DeviceConfig::default()
    };
    assert_eq!(cfg.views_per_image_bound(), 17);
    let images: Vec<_> = PIPELINE_IMAGES.iter().map(|r| load(r)).collect();
    let refs = image_refs(&images);
    let mut twin = TwinPipeline::new(det.clone(), emb.clone(), cfg.clone()).unwrap();
    // Several detector calls of at most 17 views; more faces than one embedder call holds.
    let got = twin.analyze(&refs).unwrap();
    let total = assert_pipeline_matches_cpu(&images, &got);
    assert_eq!(got[0].len(), 29, "Solvay");
    assert!(total > 4 * cfg.max_faces, "{total} faces");
    // The same images one at a time give the same faces and vectors.
    for (i, r) in refs.iter().enumerate() {
        let one = twin.analyze(std::slice::from_ref(r)).unwrap();
        assert_eq!(one[0].len(), got[i].len(), "image {i}");
        for (a, b) in one[0].iter().zip(&got[i]) {
            assert_eq!(a.face, b.face);
            assert_eq!(a.embedding, b.embedding);
        }
    }
    // An empty image is refused with its index; too few views per call is refused up front.
    let bad = [
        refs[1],
        ImageRef {
            width: 0,
            height: 0,
            data: &[],
        },
    ];
    let e = twin.analyze(&bad).unwrap_err();
    assert!(e.to_string().contains("image 1 is empty"), "{e}");
    cfg.max_views = 16;
    let e = TwinPipeline::new(det, emb, cfg).unwrap_err();
    assert!(e.to_string().contains("max_views 16"), "{e}");
}
