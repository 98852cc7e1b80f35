#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared by the graph executor tests: data and models paths, real detector inputs, ONNX
//! Runtime runs, decoding of YuNet outputs into faces, aligned face crops.

use std::path::PathBuf;

use likeness_kernels::twin::letterbox::{
    CropBox, Filter, ImageRef, LetterboxView, Normalise, letterbox_batch,
};
use likeness_models::align::{self, Similarity, TEMPLATE};
use likeness_models::detect::{DetectParams, Detection, View, YuNetLevel};
use likeness_models::{DecodeLimits, RgbImage};
use ort::value::TensorRef;

pub fn shared(sub: &str, env: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared").into())
        .join(sub)
}

pub fn data(rel: &str) -> PathBuf {
    std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared("data", "LIKENESS_SHARED_DIR"))
        .join(rel)
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared("models", "LIKENESS_SHARED_DIR"))
}

pub fn load(rel: &str) -> RgbImage {
    let bytes = std::fs::read(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    likeness_models::decode::decode(&bytes, &DecodeLimits::default()).unwrap()
}

pub const DETECTOR: &str = "yunet_s_dynamic.onnx";
pub const EMBEDDER: &str = "mobilefacenet_128d_dynamic.onnx";

/// The detector input of one view (resampled from the image, YuNet normalisation, padded).
pub fn view_input(img: &RgbImage, v: &View) -> Vec<f32> {
    let (w, h) = (f64::from(img.width), f64::from(img.height));
    let crop = CropBox {
        left: f64::from(v.x0),
        top: f64::from(v.y0),
        width: (f64::from(v.content_w) / f64::from(v.scale)).min(w - f64::from(v.x0)),
        height: (f64::from(v.content_h) / f64::from(v.scale)).min(h - f64::from(v.y0)),
    };
    let views = [LetterboxView {
        image: 0,
        crop,
        content: (v.content_w, v.content_h),
        input: (v.input_w, v.input_h),
        filter: Filter::Interpolation,
    }];
    let images = [ImageRef {
        width: img.width,
        height: img.height,
        data: &img.data,
    }];
    let mut input = Vec::new();
    letterbox_batch(&images, &views, Normalise::YUNET, &mut input).unwrap();
    input
}

pub fn ort_run(
    session: &mut ort::session::Session,
    dims: &[usize],
    input: &[f32],
) -> Vec<Vec<f32>> {
    let tensor = TensorRef::from_array_view((dims.to_vec(), input)).unwrap();
    let outputs = session.run(ort::inputs![tensor]).unwrap();
    (0..outputs.len())
        .map(|k| outputs[k].try_extract_tensor::<f32>().unwrap().1.to_vec())
        .collect()
}

pub fn detections(outs: &[Vec<f32>], v: &View, img: &RgbImage) -> Vec<Detection> {
    let p = DetectParams::default();
    let levels: Vec<YuNetLevel<'_>> = (0..3)
        .map(|li| YuNetLevel {
            stride: [8, 16, 32][li],
            cls: &outs[li],
            obj: &outs[3 + li],
            bbox: &outs[6 + li],
            kps: &outs[9 + li],
        })
        .collect();
    let mut dets = Vec::new();
    likeness_models::detect::decode_yunet(&levels, v.input_w, p.score_threshold, &mut dets);
    likeness_models::detect::map_to_image(&mut dets, v, img.width, img.height);
    likeness_models::detect::nms(dets, p.nms_iou, p.max_faces)
}

pub fn session(file: &str) -> ort::session::Session {
    likeness_models::runtime::init(None).unwrap();
    likeness_models::runtime::open_session(&models_dir().join(file), 2).unwrap()
}

/// Aligned embedder inputs of the faces ORT's detector finds on a few photos.
pub fn face_crops() -> Vec<Vec<f32>> {
    let mut ort = session(DETECTOR);
    let mut crops = Vec::new();
    for rel in [
        "group/insightface_t1.jpg",
        "group/deepface_couple.jpg",
        "photos/img1.jpg",
        "photos/img10.jpg",
    ] {
        let img = load(rel);
        let v =
            likeness_models::detect::plan_views(img.width, img.height, &DetectParams::default())[0];
        let dims = [1, 3, v.input_h as usize, v.input_w as usize];
        let outs = ort_run(&mut ort, &dims, &view_input(&img, &v));
        for d in detections(&outs, &v, &img) {
            let m = Similarity::estimate(&d.landmarks, &TEMPLATE);
            let mut rgb = vec![0u8; 112 * 112 * 3];
            align::warp(&img, &m, &mut rgb);
            let mut input = vec![0f32; 112 * 112 * 3];
            align::to_embedder_input(&rgb, &mut input);
            crops.push(input);
        }
    }
    crops
}

pub fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Every output within `tol` of the reference (scores are probabilities; boxes and landmarks
/// are in stride units).
pub fn assert_outputs_close(
    ours: &[likeness_kernels::twin::graph::Tensor],
    reference: &[Vec<f32>],
    tol: f32,
    what: &str,
) {
    assert_eq!(ours.len(), reference.len(), "{what}: output count");
    for (a, b) in ours.iter().zip(reference) {
        assert_eq!(a.data.len(), b.len(), "{what} {}", a.name);
        let worst = a
            .data
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < tol, "{what} {}: max |diff| {worst}", a.name);
    }
}

/// The same faces: same count, boxes and landmarks within 1 px, scores within 0.001.
pub fn assert_same_faces(a: &[Detection], b: &[Detection], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: face count");
    for (x, y) in a.iter().zip(b) {
        for k in 0..4 {
            assert!(
                (x.bbox[k] - y.bbox[k]).abs() <= 1.0,
                "{what}: box {x:?} vs {y:?}"
            );
        }
        for k in 0..5 {
            for c in 0..2 {
                assert!(
                    (x.landmarks[k][c] - y.landmarks[k][c]).abs() <= 1.0,
                    "{what}: landmarks {x:?} vs {y:?}"
                );
            }
        }
        assert!(
            (x.score - y.score).abs() < 1e-3,
            "{what}: score {x:?} vs {y:?}"
        );
    }
}

/// Worst cosine between the rows (`dim` wide) of two embedding batches.
pub fn worst_cosine(a: &[f32], b: &[f32], dim: usize) -> f32 {
    a.chunks_exact(dim)
        .zip(b.chunks_exact(dim))
        .map(|(x, y)| {
            let (x, y) = (normalised(x), normalised(y));
            x.iter().zip(&y).map(|(p, q)| p * q).sum::<f32>()
        })
        .fold(1f32, f32::min)
}

/// The CPU pipeline (ONNX Runtime) with the fixed-input YuNet-s export, whose detection plan
/// (`plan_tiles`: whole image + overlapping tiles of the detail image) is the device
/// pipeline's: per image its faces, best first.
pub fn tile_plan_reference(images: &[RgbImage]) -> Vec<Vec<likeness_models::Face>> {
    likeness_models::runtime::init(None).unwrap();
    let pipeline = likeness_models::Pipeline::load(likeness_models::PipelineConfig {
        models_dir: models_dir(),
        detector: "yunet_s_640".into(),
        // The device runs the fp32 embedder (the CPU default is its 8-bit version).
        embedder: "mobilefacenet_128".into(),
        ..likeness_models::PipelineConfig::default()
    })
    .unwrap();
    let refs: Vec<&RgbImage> = images.iter().collect();
    pipeline
        .analyze(&refs, None, &mut likeness_models::StageTimings::default())
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Images for the pipeline tests and their decoded pixels as `ImageRef`s.
pub const PIPELINE_IMAGES: [&str; 7] = [
    "group/solvay_conference_1927.png",
    "group/insightface_t1.jpg",
    "group/deepface_couple.jpg",
    "photos/img1.jpg",
    "photos/img10.jpg",
    "photos/img2.jpg",
    "group/deepface_selfie-many-people.jpg",
];

/// The pipeline result of every image against the CPU pipeline with the same detection plan:
/// the same faces (boxes and landmarks within 1 px), embeddings at cosine ≥ 0.999 and unit
/// length, full crops. Returns the number of faces.
pub fn assert_pipeline_matches_cpu(
    images: &[RgbImage],
    got: &[Vec<likeness_kernels::device::DeviceFace>],
) -> usize {
    assert_eq!(got.len(), images.len());
    let reference = tile_plan_reference(images);
    let mut total = 0;
    for (i, want) in reference.iter().enumerate() {
        let dets: Vec<Detection> = got[i]
            .iter()
            .map(|f| Detection {
                bbox: f.face.bbox,
                landmarks: f.face.landmarks,
                score: f.face.score,
            })
            .collect();
        let want_dets: Vec<Detection> = want.iter().map(|f| f.detection).collect();
        assert_same_faces(&dets, &want_dets, &format!("image {i}"));
        for (f, w) in got[i].iter().zip(want) {
            let cos: f32 = f
                .embedding
                .iter()
                .zip(&w.embedding)
                .map(|(a, b)| a * b)
                .sum();
            assert!(cos >= 0.999, "image {i}: cosine {cos}");
            let norm: f32 = f.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            assert_eq!(f.crop.len(), 112 * 112 * 3);
        }
        total += got[i].len();
    }
    total
}

/// The decoded images as the kernels' `ImageRef`s.
pub fn image_refs(images: &[RgbImage]) -> Vec<ImageRef<'_>> {
    images
        .iter()
        .map(|i| ImageRef {
            width: i.width,
            height: i.height,
            data: &i.data,
        })
        .collect()
}
