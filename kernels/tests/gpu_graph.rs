#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Our graph executor on a real device (`graph.cu`, `Gpu::graph`) against its CPU twin and
//! against ONNX Runtime on the CPU, on the real models and photos: detector outputs decode to
//! the same faces as ORT's (boxes and landmarks within 1 px), embeddings have cosine ≥ 0.999
//! with ORT's; an impossible plan is a clear out-of-memory error, not a crash. Without libcuda
//! (CI, this sandbox) every test prints "no CUDA device: GPU test skipped" and passes; on a GPU
//! machine run `cargo nextest run -p likeness-kernels --test gpu_graph --no-capture`.

mod common;

use common::*;
use likeness_kernels::gpu::Gpu;
use likeness_kernels::graph::{Model, Plan};
use likeness_kernels::nvrtc::Compiler;
use likeness_kernels::probe;
use likeness_kernels::twin::graph::{self, Workspace};
use likeness_models::detect::DetectParams;

fn gpu() -> Option<Gpu> {
    let p = probe::probe_cuda();
    if !p.usable() {
        eprintln!("no CUDA device: GPU test skipped ({})", p.summary());
        return None;
    }
    let compiler = Compiler::new(None).expect("a CUDA device is present, so NVRTC must load");
    Some(Gpu::new(0, &compiler).expect("device 0 opens and every kernel loads"))
}

/// Largest difference and number of values that differ in their bits.
fn compare(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let differ = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    (worst, differ)
}

#[test]
fn detector_on_the_device_equals_the_twin_and_finds_ort_faces() {
    let Some(gpu) = gpu() else { return };
    let model = Model::load(&models_dir().join(DETECTOR)).unwrap();
    let mut ort = session(DETECTOR);
    let mut ws = Workspace::default();
    let mut faces = 0;
    for rel in [
        "group/solvay_conference_1927.png",
        "group/insightface_t1.jpg",
        "group/deepface_couple.jpg",
    ] {
        let img = load(rel);
        for v in
            likeness_models::detect::plan_views(img.width, img.height, &DetectParams::default())
        {
            let dims = [1, 3, v.input_h as usize, v.input_w as usize];
            let input = view_input(&img, &v);
            let plan = Plan::new(&model, &dims).unwrap();
            let mut dev = gpu.graph(&plan).unwrap();
            let twin = graph::run(&plan, &input, &mut ws).unwrap();
            // 1x1 convolutions by the conv2d kernel (the twin's arithmetic), then by cuBLAS.
            let mut ours = Vec::new();
            for gemm in [false, true] {
                dev.set_pointwise_gemm(gemm);
                ours = gpu.run_graph(&mut dev, &input).unwrap();
                let tol = if gemm { 2e-4 } else { 1e-5 };
                for (d, t) in ours.iter().zip(&twin) {
                    let (worst, differ) = compare(&d.data, &t.data);
                    eprintln!(
                        "{rel} {dims:?} {} (gemm {gemm}): max |device - twin| {worst:e}, {differ} of {} values differ in bits",
                        d.name,
                        d.data.len()
                    );
                    assert!(worst < tol, "{rel} {} (gemm {gemm}): {worst}", d.name);
                }
            }
            let reference = ort_run(&mut ort, &dims, &input);
            let what = format!("{rel} {dims:?} (device)");
            assert_outputs_close(&ours, &reference, 2e-3, &what);
            let raw: Vec<Vec<f32>> = ours.into_iter().map(|t| t.data).collect();
            let a = detections(&raw, &v, &img);
            assert_same_faces(&a, &detections(&reference, &v, &img), &what);
            faces += a.len();
        }
    }
    assert!(faces >= 37, "{faces} faces");
}

#[test]
fn embedder_on_the_device_matches_ort_and_the_twin() {
    let Some(gpu) = gpu() else { return };
    let crops = face_crops();
    let n = crops.len();
    let batch = crops.concat();
    let model = Model::load(&models_dir().join(EMBEDDER)).unwrap();
    let plan = Plan::new(&model, &[n, 3, 112, 112]).unwrap();
    let mut dev = gpu.graph(&plan).unwrap();
    let twin = graph::run(&plan, &batch, &mut Workspace::default()).unwrap();
    dev.set_pointwise_gemm(false);
    let direct = gpu.run_graph(&mut dev, &batch).unwrap();
    let (worst, differ) = compare(&direct[0].data, &twin[0].data);
    eprintln!(
        "embedder x{n} (conv2d): max |device - twin| {worst:e}, {differ} values differ in bits"
    );
    assert!(worst < 1e-4, "{worst}");
    dev.set_pointwise_gemm(true);
    let ours = gpu.run_graph(&mut dev, &batch).unwrap();
    let cos = worst_cosine(&ours[0].data, &twin[0].data, 128);
    eprintln!("embedder x{n} (cuBLAS 1x1): worst cosine with the twin {cos}");
    assert!(cos >= 0.9999, "{cos}");
    let reference = ort_run(&mut session(EMBEDDER), &[n, 3, 112, 112], &batch);
    let cos = worst_cosine(&ours[0].data, &reference[0], 128);
    eprintln!("embedder x{n}: worst cosine with ORT {cos}");
    assert!(cos >= 0.999, "{cos}");
    // Run again on the same device buffers: same result (slots are reused, not stale).
    let again = gpu.run_graph(&mut dev, &batch).unwrap();
    assert_eq!(again[0].data, ours[0].data);
}

#[test]
fn a_plan_larger_than_the_device_is_an_error_not_a_crash() {
    let Some(gpu) = gpu() else { return };
    let model = Model::load(&models_dir().join(DETECTOR)).unwrap();
    // 4096 views of 4096x4096: terabytes of activations.
    let plan = Plan::new(&model, &[4096, 3, 4096, 4096]).unwrap();
    let e = gpu.graph(&plan).unwrap_err();
    eprintln!("{e}");
    assert!(e.to_string().contains("CUDA"), "{e}");
    // The device still works afterwards.
    let small = Plan::new(&model, &[1, 3, 64, 64]).unwrap();
    let mut dev = gpu.graph(&small).unwrap();
    assert_eq!(
        gpu.run_graph(&mut dev, &vec![0.5; 3 * 64 * 64])
            .unwrap()
            .len(),
        12
    );
}

#[test]
fn device_pipeline_finds_and_embeds_the_faces_ort_does() {
    use likeness_kernels::device::{DeviceConfig, DevicePipeline};
    use likeness_kernels::twin::pipeline::TwinPipeline;
    let Some(gpu) = gpu() else { return };
    let det = Model::load(&models_dir().join(DETECTOR)).unwrap();
    let emb = Model::load(&models_dir().join(EMBEDDER)).unwrap();
    let cfg = DeviceConfig {
        max_views: 17,
        max_faces: 8,
        ..DeviceConfig::default()
    };
    let mut pipe = DevicePipeline::new(gpu, &det, &emb, cfg.clone()).unwrap();
    eprintln!(
        "device pipeline holds {} MB",
        pipe.device_bytes() / 1_000_000
    );
    let images: Vec<_> = PIPELINE_IMAGES.iter().map(|r| load(r)).collect();
    let refs = image_refs(&images);
    // Several detector calls of at most 17 views, more faces than one embedder call holds.
    let got = pipe.analyze(&refs).unwrap();
    let total = assert_pipeline_matches_cpu(&images, &got);
    assert_eq!(got[0].len(), 29, "Solvay");
    // And the CPU twin of the pipeline gives the same faces.
    let mut twin = TwinPipeline::new(det, emb, cfg.clone()).unwrap();
    let twin_got = twin.analyze(&refs).unwrap();
    for (a, b) in got.iter().zip(&twin_got) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let cos: f32 = x
                .embedding
                .iter()
                .zip(&y.embedding)
                .map(|(p, q)| p * q)
                .sum();
            assert!(cos >= 0.9999, "device vs twin cosine {cos}");
        }
    }
    assert!(total > cfg.max_faces, "{total} faces");
}
