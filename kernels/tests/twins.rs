#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CPU twins against the `models/` pipeline stages on real images (shared/data) with the
//! real detector (shared/models): the letterbox resampling is byte-identical to
//! fast_image_resize as models calls it; decoding + mapping + NMS of real YuNet outputs gives
//! exactly models' detections; the warp gives exactly models' aligned crops; L2 and top-k
//! agree with models and with brute force.

use std::path::PathBuf;

use fast_image_resize as fr;
use likeness_kernels::twin::detect::{self, Level, ViewGeometry, ViewOutputs};
use likeness_kernels::twin::letterbox::{
    CropBox, Filter, ImageRef, LetterboxView, Normalise, ResamplePlan, letterbox_batch, to_planar,
};
use likeness_kernels::twin::search;
use likeness_kernels::twin::warp::{self, Affine, CROP, WarpJob};
use likeness_models::align::{self, Similarity, TEMPLATE};
use likeness_models::detect::{DetectParams, Detection, YuNetLevel};
use likeness_models::{DecodeLimits, RgbImage};
use ort::value::TensorRef;

fn shared(sub: &str, env: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared").into())
        .join(sub)
}

fn data(rel: &str) -> PathBuf {
    std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared("data", "LIKENESS_SHARED_DIR"))
        .join(rel)
}

fn models_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared("models", "LIKENESS_SHARED_DIR"))
}

fn load(rel: &str) -> RgbImage {
    let bytes = std::fs::read(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    likeness_models::decode::decode(&bytes, &DecodeLimits::default()).unwrap()
}

const IMAGES: [&str; 6] = [
    "group/solvay_conference_1927.png",
    "group/insightface_t1.jpg",
    "group/deepface_selfie-many-people.jpg",
    "group/deepface_couple.jpg",
    "photos/img1.jpg",
    "photos/img10.jpg",
];

/// fast_image_resize's bilinear resampling of a crop, in either mode.
fn reference_resample(img: &RgbImage, crop: CropBox, w: u32, h: u32, filter: Filter) -> Vec<u8> {
    let src =
        fr::images::ImageRef::new(img.width, img.height, &img.data, fr::PixelType::U8x3).unwrap();
    let mut out = vec![0u8; (w * h * 3) as usize];
    let mut dst = fr::images::Image::from_slice_u8(w, h, &mut out, fr::PixelType::U8x3).unwrap();
    let opts = fr::ResizeOptions::new()
        .resize_alg(match filter {
            Filter::Convolution => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
            Filter::Interpolation => fr::ResizeAlg::Interpolation(fr::FilterType::Bilinear),
        })
        .crop(crop.left, crop.top, crop.width, crop.height);
    fr::Resizer::new().resize(&src, &mut dst, &opts).unwrap();
    out
}

/// The crop of a models view in image pixels (as models' letterbox computes it).
fn view_crop(img: &RgbImage, v: &likeness_models::detect::View) -> CropBox {
    let (w, h) = (f64::from(img.width), f64::from(img.height));
    CropBox {
        left: f64::from(v.x0),
        top: f64::from(v.y0),
        width: (f64::from(v.content_w) / f64::from(v.scale)).min(w - f64::from(v.x0)),
        height: (f64::from(v.content_h) / f64::from(v.scale)).min(h - f64::from(v.y0)),
    }
}

#[test]
fn letterbox_resampling_is_byte_identical_to_fast_image_resize() {
    let p = DetectParams::default();
    let mut checked = 0;
    for rel in IMAGES {
        let img = load(rel);
        let mut crops: Vec<(CropBox, u32, u32)> =
            likeness_models::detect::plan_views(img.width, img.height, &p)
                .iter()
                .map(|v| (view_crop(&img, v), v.content_w, v.content_h))
                .collect();
        // Fractional tiles, an upscale, an exact copy and one-axis resamples.
        let (w, h) = (f64::from(img.width), f64::from(img.height));
        crops.push((
            CropBox {
                left: w / 3.3,
                top: h / 4.7,
                width: w / 2.1,
                height: h / 2.9,
            },
            640,
            640,
        ));
        crops.push((
            CropBox {
                left: 10.0,
                top: 7.0,
                width: 60.0,
                height: 50.0,
            },
            97,
            81,
        ));
        crops.push((
            CropBox {
                left: 5.0,
                top: 3.0,
                width: 64.0,
                height: 32.0,
            },
            64,
            32,
        ));
        crops.push((
            CropBox {
                left: 5.0,
                top: 3.0,
                width: 64.0,
                height: 32.0,
            },
            64,
            19,
        ));
        crops.push((
            CropBox {
                left: 5.5,
                top: 3.0,
                width: 64.0,
                height: 32.0,
            },
            64,
            32,
        ));
        for (crop, cw, ch) in crops {
            for filter in [Filter::Interpolation, Filter::Convolution] {
                let plan = ResamplePlan::new(img.width, img.height, crop, cw, ch, filter).unwrap();
                let twin = plan.run(&img.data).unwrap();
                let reference = reference_resample(&img, crop, cw, ch, filter);
                let diff = twin.iter().zip(&reference).filter(|(a, b)| a != b).count();
                assert_eq!(
                    diff, 0,
                    "{rel} crop {crop:?} -> {cw}x{ch} {filter:?}: {diff} bytes differ"
                );
                checked += twin.len();
            }
        }
    }
    assert!(checked > 10_000_000, "{checked}");
}

/// The twin's crop of a view of a source showing the image at `src_scale` (as
/// `models::detect::resample` computes it: the whole source unless the view is a tile).
fn source_crop(v: &likeness_models::detect::View, (sw, sh): (u32, u32), src_scale: f32) -> CropBox {
    let k = f64::from(src_scale) / f64::from(v.scale);
    let x0 = f64::from(v.x0) * f64::from(src_scale);
    let y0 = f64::from(v.y0) * f64::from(src_scale);
    if v.interior.iter().any(|&i| i) || x0 > 0.0 || y0 > 0.0 {
        CropBox {
            left: x0,
            top: y0,
            width: (f64::from(v.content_w) * k).min(f64::from(sw) - x0),
            height: (f64::from(v.content_h) * k).min(f64::from(sh) - y0),
        }
    } else {
        CropBox {
            left: 0.0,
            top: 0.0,
            width: f64::from(sw),
            height: f64::from(sh),
        }
    }
}

#[test]
fn letterbox_twin_equals_models_detector_input_bit_for_bit() {
    use likeness_models::detect::{Source, View, plan_tiles, plan_views, resample, to_input};
    use likeness_models::manifest::DetectorFamily;
    let p = DetectParams::default();
    let mut resizer = fr::Resizer::new();
    let mut views_checked = 0;
    for rel in IMAGES {
        let img = load(rel);
        let mut views = plan_views(img.width, img.height, &p);
        // Tiles of the fixed-input plan too (interior edges, fractional crops).
        views.extend(
            plan_tiles(img.width, img.height, &p)
                .into_iter()
                .skip(1)
                .take(3),
        );
        // The detail source, resized once per image, as the pipeline does.
        let mut detail = img.data.clone();
        let mut detail_size = (img.width, img.height);
        let mut detail_scale = 1.0f32;
        if let Some(ds) = p.detail_scale(img.width, img.height) {
            let (sw, sh) = (
                ((img.width as f32 * ds).round() as u32).max(1),
                ((img.height as f32 * ds).round() as u32).max(1),
            );
            let full = View {
                x0: 0.0,
                y0: 0.0,
                scale: ds,
                content_w: sw,
                content_h: sh,
                input_w: sw,
                input_h: sh,
                interior: [false; 4],
                source: Source::Image,
            };
            let mut reference = Vec::new();
            resample(
                &img.data,
                (img.width, img.height),
                1.0,
                &full,
                &mut resizer,
                &mut reference,
            )
            .unwrap();
            let crop = source_crop(&full, (img.width, img.height), 1.0);
            let twin =
                ResamplePlan::new(img.width, img.height, crop, sw, sh, Filter::Interpolation)
                    .unwrap()
                    .run(&img.data)
                    .unwrap();
            assert!(twin == reference, "{rel}: detail image differs");
            (detail, detail_size, detail_scale) = (twin, (sw, sh), ds);
        }
        for v in &views {
            let (src, size, scale) = match v.source {
                Source::Image => (&img.data[..], (img.width, img.height), 1.0),
                Source::Detail => (&detail[..], detail_size, detail_scale),
            };
            let n = 3 * (v.input_w * v.input_h) as usize;
            let mut reference = vec![f32::NAN; n];
            let mut twin = vec![f32::NAN; n];
            if scale == v.scale && size == (v.content_w, v.content_h) {
                to_input(src, v, DetectorFamily::YuNet, &mut reference);
                to_planar(
                    src,
                    size,
                    (v.input_w, v.input_h),
                    Normalise::YUNET,
                    &mut twin,
                )
                .unwrap();
            } else {
                let mut pix = Vec::new();
                resample(src, size, scale, v, &mut resizer, &mut pix).unwrap();
                to_input(&pix, v, DetectorFamily::YuNet, &mut reference);
                let crop = source_crop(v, size, scale);
                let plan = ResamplePlan::new(
                    size.0,
                    size.1,
                    crop,
                    v.content_w,
                    v.content_h,
                    Filter::Interpolation,
                )
                .unwrap();
                let tp = plan.run(src).unwrap();
                to_planar(
                    &tp,
                    (v.content_w, v.content_h),
                    (v.input_w, v.input_h),
                    Normalise::YUNET,
                    &mut twin,
                )
                .unwrap();
            }
            let diff = twin
                .iter()
                .zip(&reference)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(diff, 0, "{rel} view {v:?}: {diff} of {n} values differ");
            views_checked += 1;
        }
    }
    assert!(views_checked >= 12, "{views_checked}");
}

#[test]
fn planar_input_has_yunet_order_and_zero_padding() {
    let img = load("group/deepface_couple.jpg");
    let v = likeness_models::detect::plan_views(img.width, img.height, &DetectParams::default())[0];
    let crop = view_crop(&img, &v);
    let (cw, ch) = (v.content_w, v.content_h);
    let mut out = Vec::new();
    let views = [LetterboxView {
        image: 0,
        crop,
        content: (cw, ch),
        input: (640, 640),
        filter: Filter::Interpolation,
    }];
    let images = [ImageRef {
        width: img.width,
        height: img.height,
        data: &img.data,
    }];
    letterbox_batch(&images, &views, Normalise::YUNET, &mut out).unwrap();
    let pix = reference_resample(&img, crop, cw, ch, Filter::Interpolation);
    let plane = 640 * 640;
    for (y, x) in [
        (0usize, 0usize),
        (ch as usize / 2, cw as usize / 3),
        (ch as usize - 1, cw as usize - 1),
    ] {
        let p = &pix[(y * cw as usize + x) * 3..][..3];
        assert_eq!(out[y * 640 + x], f32::from(p[2]));
        assert_eq!(out[plane + y * 640 + x], f32::from(p[1]));
        assert_eq!(out[2 * plane + y * 640 + x], f32::from(p[0]));
    }
    let padding = (0..3)
        .flat_map(|c| (0..640usize).flat_map(move |y| (0..640usize).map(move |x| (c, y, x))))
        .filter(|&(_, y, x)| x >= cw as usize || y >= ch as usize)
        .map(|(c, y, x)| out[c * plane + y * 640 + x])
        .fold(0f32, |a, v| a.max(v.abs()));
    assert_eq!(padding, 0.0);
    assert!(to_planar(&pix, (cw, ch), (cw - 1, ch), Normalise::YUNET, &mut out).is_err());
}

/// Raw YuNet outputs of one 640x640 input (the whole image letterboxed by the twin).
struct Raw {
    outs: Vec<Vec<f32>>,
    view: likeness_models::detect::View,
    img: RgbImage,
}

fn yunet_raw(rel: &str) -> Raw {
    likeness_models::runtime::init(None).unwrap();
    let mut session =
        likeness_models::runtime::open_session(&models_dir().join("yunet_s_dynamic.onnx"), 2)
            .unwrap();
    let img = load(rel);
    let v = likeness_models::detect::plan_views(img.width, img.height, &DetectParams::default())[0];
    let views = [LetterboxView {
        image: 0,
        crop: view_crop(&img, &v),
        content: (v.content_w, v.content_h),
        input: (640, 640),
        filter: Filter::Interpolation,
    }];
    let images = [ImageRef {
        width: img.width,
        height: img.height,
        data: &img.data,
    }];
    let mut input = Vec::new();
    letterbox_batch(&images, &views, Normalise::YUNET, &mut input).unwrap();
    let tensor = TensorRef::from_array_view(([1usize, 3, 640, 640], input.as_slice())).unwrap();
    let outputs = session.run(ort::inputs![tensor]).unwrap();
    let outs = (0..12)
        .map(|k| outputs[k].try_extract_tensor::<f32>().unwrap().1.to_vec())
        .collect();
    Raw { outs, view: v, img }
}

#[test]
fn decode_map_and_nms_equal_models_on_real_detector_outputs() {
    let p = DetectParams::default();
    let expected = [
        ("group/solvay_conference_1927.png", 29),
        ("group/insightface_t1.jpg", 6),
        ("group/deepface_couple.jpg", 2),
    ];
    for (rel, faces) in expected {
        let raw = yunet_raw(rel);
        let strides = detect::STRIDES;
        let level = |li: usize| Level {
            stride: strides[li],
            cls: &raw.outs[li],
            obj: &raw.outs[3 + li],
            bbox: &raw.outs[6 + li],
            kps: &raw.outs[9 + li],
        };
        // Twin.
        let v = &raw.view;
        let geometry = ViewGeometry {
            x0: v.x0,
            y0: v.y0,
            scale: v.scale,
            content_w: v.content_w,
            content_h: v.content_h,
            interior: v.interior,
            img_w: raw.img.width,
            img_h: raw.img.height,
        };
        // The same view twice, as if it were two tiles: keys keep the CPU order.
        let views = [
            ViewOutputs {
                image: 0,
                input_w: 640,
                geometry,
                levels: [level(0), level(1), level(2)],
            },
            ViewOutputs {
                image: 1,
                input_w: 640,
                geometry,
                levels: [level(0), level(1), level(2)],
            },
        ];
        let twin =
            detect::detect_batch(&views, 2, p.score_threshold, p.nms_iou, p.max_faces).unwrap();
        // models.
        let levels: Vec<YuNetLevel<'_>> = (0..3)
            .map(|li| YuNetLevel {
                stride: strides[li],
                cls: &raw.outs[li],
                obj: &raw.outs[3 + li],
                bbox: &raw.outs[6 + li],
                kps: &raw.outs[9 + li],
            })
            .collect();
        let mut dets: Vec<Detection> = Vec::new();
        likeness_models::detect::decode_yunet(&levels, 640, p.score_threshold, &mut dets);
        likeness_models::detect::map_to_image(&mut dets, v, raw.img.width, raw.img.height);
        let reference = likeness_models::detect::nms(dets, p.nms_iou, p.max_faces);
        assert_eq!(
            reference.len(),
            faces,
            "{rel}: models found {}",
            reference.len()
        );
        for t in &twin {
            assert_eq!(t.len(), reference.len(), "{rel}");
            for (a, b) in t.iter().zip(&reference) {
                assert_eq!(a.bbox, b.bbox, "{rel}");
                assert_eq!(a.landmarks, b.landmarks, "{rel}");
                assert_eq!(a.score, b.score, "{rel}");
            }
        }
    }
}

#[test]
fn map_drops_faces_cut_by_interior_edges() {
    let face = detect::Face {
        bbox: [1.0, 10.0, 30.0, 40.0],
        landmarks: [[5.0, 20.0]; 5],
        score: 0.9,
    };
    let c = detect::Candidate { face, key: 0 };
    let mut g = ViewGeometry {
        x0: 100.0,
        y0: 50.0,
        scale: 0.5,
        content_w: 640,
        content_h: 640,
        interior: [false; 4],
        img_w: 2000,
        img_h: 2000,
    };
    let m = detect::map_to_image(&c, &g).unwrap();
    assert_eq!(m.face.bbox, [102.0, 70.0, 160.0, 130.0]);
    assert_eq!(m.face.landmarks[0], [110.0, 90.0]);
    g.interior[0] = true;
    assert!(detect::map_to_image(&c, &g).is_none());
}

#[test]
fn warp_twin_equals_models_align_on_detected_faces() {
    let mut jobs = Vec::new();
    let mut images = Vec::new();
    let p = DetectParams::default();
    for (i, rel) in ["group/insightface_t1.jpg", "group/deepface_couple.jpg"]
        .iter()
        .enumerate()
    {
        let raw = yunet_raw(rel);
        let levels: Vec<YuNetLevel<'_>> = (0..3)
            .map(|li| YuNetLevel {
                stride: detect::STRIDES[li],
                cls: &raw.outs[li],
                obj: &raw.outs[3 + li],
                bbox: &raw.outs[6 + li],
                kps: &raw.outs[9 + li],
            })
            .collect();
        let mut dets = Vec::new();
        likeness_models::detect::decode_yunet(&levels, 640, p.score_threshold, &mut dets);
        likeness_models::detect::map_to_image(&mut dets, &raw.view, raw.img.width, raw.img.height);
        for d in likeness_models::detect::nms(dets, p.nms_iou, p.max_faces) {
            let inv = Similarity::estimate(&d.landmarks, &TEMPLATE).inverse();
            jobs.push((i, inv));
        }
        images.push(raw.img);
    }
    // A face half outside the image exercises the zero border.
    let edge = Similarity {
        a: 1.3,
        b: 0.4,
        tx: -60.0,
        ty: -50.0,
    };
    jobs.push((1, edge));
    assert!(jobs.len() >= 9, "{}", jobs.len());
    let refs: Vec<ImageRef<'_>> = images
        .iter()
        .map(|im| ImageRef {
            width: im.width,
            height: im.height,
            data: &im.data,
        })
        .collect();
    let twin_jobs: Vec<WarpJob> = jobs
        .iter()
        .map(|&(image, s)| WarpJob {
            image,
            inverse: Affine {
                a: s.a,
                b: s.b,
                tx: s.tx,
                ty: s.ty,
            },
        })
        .collect();
    let (mut rgb, mut input) = (Vec::new(), Vec::new());
    warp::warp_batch(&refs, &twin_jobs, &mut rgb, &mut input).unwrap();
    let n = CROP * CROP * 3;
    for (j, &(image, inv)) in jobs.iter().enumerate() {
        let mut reference = vec![0u8; n];
        // models' warp takes the image -> crop transform and inverts it itself.
        let fwd = inv.inverse();
        align::warp(&images[image], &fwd, &mut reference);
        // Use the twin on exactly the inverse models computes.
        let exact = fwd.inverse();
        let mut twin = vec![0u8; n];
        warp::warp_face(
            &refs[image],
            &Affine {
                a: exact.a,
                b: exact.b,
                tx: exact.tx,
                ty: exact.ty,
            },
            &mut twin,
        )
        .unwrap();
        assert_eq!(twin, reference, "face {j}");
        let mut emb = vec![0f32; n];
        align::to_embedder_input(&reference, &mut emb);
        let mut twin_emb = vec![0f32; n];
        warp::to_embedder_input(&twin, &mut twin_emb);
        assert_eq!(emb, twin_emb);
        // The batched twin (on the given inverse) is within 1/255 of models' crop.
        let batch = &rgb[j * n..(j + 1) * n];
        let worst = batch
            .iter()
            .zip(&reference)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "face {j}: {worst}");
        assert_eq!(input[j * n..(j + 1) * n].len(), n);
    }
}

/// A deterministic generator (xorshift) for test vectors.
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn l2_twin_equals_models() {
    let mut rows = vectors(50, 128, 7);
    rows[128..256].fill(0.0);
    let mut reference = rows.clone();
    let norms = search::l2_normalize_rows(&mut rows, 128).unwrap();
    for (k, r) in reference.chunks_exact_mut(128).enumerate() {
        assert_eq!(align::l2_normalize(r), norms[k]);
    }
    assert_eq!(rows, reference);
    assert!(search::l2_normalize_rows(&mut rows, 99).is_err());
}

#[test]
fn topk_twin_equals_brute_force() {
    let dim = 128;
    let mut gallery = vectors(5000, dim, 11);
    search::l2_normalize_rows(&mut gallery, dim).unwrap();
    // Duplicates make exact ties.
    let dup = gallery[dim * 10..dim * 11].to_vec();
    gallery[dim * 4000..dim * 4001].copy_from_slice(&dup);
    let mut queries = vectors(20, dim, 13);
    queries[..dim].copy_from_slice(&dup);
    search::l2_normalize_rows(&mut queries, dim).unwrap();
    for k in [1, 10, 64] {
        let hits = search::search(&queries, &gallery, dim, k).unwrap();
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            let mut all: Vec<(f64, usize)> = gallery
                .chunks_exact(dim)
                .enumerate()
                .map(|(j, g)| {
                    (
                        q.iter()
                            .zip(g)
                            .map(|(a, b)| f64::from(*a) * f64::from(*b))
                            .sum(),
                        j,
                    )
                })
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let got = &hits[qi];
            assert_eq!(got.len(), k);
            for (r, h) in got.iter().enumerate() {
                // Same ranking wherever f32 and f64 scores cannot swap neighbours.
                assert!((f64::from(h.score) - all[r].0).abs() < 1e-5, "q{qi} r{r}");
                let gap_prev = r == 0 || (all[r - 1].0 - all[r].0) > 1e-5;
                let gap_next = r + 1 >= all.len() || (all[r].0 - all[r + 1].0) > 1e-5;
                if gap_prev && gap_next {
                    assert_eq!(h.index as usize, all[r].1, "q{qi} rank {r}");
                }
            }
        }
        // The exact tie: query 0 equals gallery rows 10 and 4000; the lower index first.
        assert_eq!(hits[0][0].index, 10);
        if k > 1 {
            assert_eq!(hits[0][1].index, 4000);
            assert_eq!(hits[0][0].score, hits[0][1].score);
        }
    }
}
