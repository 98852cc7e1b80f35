#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The kernels on a real device against their CPU twins. Without libcuda (CI, this sandbox)
//! every test prints "no CUDA device: GPU test skipped" and passes; on a GPU machine run
//! `LIKENESS_NVRTC_PATH=... cargo nextest run -p likeness-kernels --test gpu --no-capture`.

use likeness_kernels::gpu::Gpu;
use likeness_kernels::nvrtc::Compiler;
use likeness_kernels::probe;
use likeness_kernels::twin::detect::{self, Level, ViewGeometry, ViewOutputs};
use likeness_kernels::twin::letterbox::{
    CropBox, Filter, ImageRef, LetterboxView, Normalise, letterbox_batch,
};
use likeness_kernels::twin::search;
use likeness_kernels::twin::warp::{self, Affine, WarpJob};

fn gpu() -> Option<Gpu> {
    let p = probe::probe_cuda();
    if !p.usable() {
        eprintln!("no CUDA device: GPU test skipped ({})", p.summary());
        return None;
    }
    let compiler = Compiler::new(None).expect("a CUDA device is present, so NVRTC must load");
    Some(Gpu::new(0, &compiler).expect("device 0 opens and every kernel loads"))
}

/// A deterministic test image with texture at every scale.
fn image(w: u32, h: u32, seed: u32) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| {
            let (p, c) = (i / 3, i % 3);
            let (x, y) = (p % w, p / w);
            ((x * 7 + y * 13 + c * 50 + seed).wrapping_mul(2654435761) >> 24) as u8 / 2
                + ((x / 8 + y / 8) % 2 * 100) as u8
        })
        .collect()
}

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
fn letterbox_on_device_equals_twin() {
    let Some(g) = gpu() else { return };
    let a = image(1999, 1333, 1);
    let b = image(480, 640, 2);
    let images = [
        ImageRef {
            width: 1999,
            height: 1333,
            data: &a,
        },
        ImageRef {
            width: 480,
            height: 640,
            data: &b,
        },
    ];
    let views = [
        LetterboxView {
            image: 0,
            crop: CropBox {
                left: 0.0,
                top: 0.0,
                width: 1999.0,
                height: 1333.0,
            },
            content: (640, 427),
            input: (640, 640),
            filter: Filter::Interpolation,
        },
        LetterboxView {
            image: 0,
            crop: CropBox {
                left: 333.3,
                top: 100.7,
                width: 700.2,
                height: 650.9,
            },
            content: (640, 595),
            input: (640, 608),
            filter: Filter::Interpolation,
        },
        LetterboxView {
            image: 1,
            crop: CropBox {
                left: 0.0,
                top: 0.0,
                width: 480.0,
                height: 640.0,
            },
            content: (480, 640),
            input: (480, 640),
            filter: Filter::Interpolation,
        },
        LetterboxView {
            image: 1,
            crop: CropBox {
                left: 0.0,
                top: 0.0,
                width: 480.0,
                height: 640.0,
            },
            content: (600, 800),
            input: (608, 800),
            filter: Filter::Interpolation,
        },
    ];
    for norm in [Normalise::YUNET, Normalise::SCRFD] {
        let mut twin = Vec::new();
        letterbox_batch(&images, &views, norm, &mut twin).unwrap();
        let dev = g.letterbox(&images, &views, norm).unwrap();
        assert_eq!(dev.len(), twin.len());
        let diff = dev.iter().zip(&twin).filter(|(x, y)| x != y).count();
        assert_eq!(diff, 0, "{diff} values differ");
    }
}

#[test]
fn warp_on_device_equals_twin() {
    let Some(g) = gpu() else { return };
    let a = image(800, 600, 3);
    let images = [ImageRef {
        width: 800,
        height: 600,
        data: &a,
    }];
    let jobs: Vec<WarpJob> = [
        (1.1f32, 0.2f32, 300.0f32, 200.0f32),
        (0.5, -0.3, 10.0, 20.0),
        (2.0, 0.9, -50.0, -40.0),
    ]
    .iter()
    .map(|&(a, b, tx, ty)| WarpJob {
        image: 0,
        inverse: Affine { a, b, tx, ty },
    })
    .collect();
    let (mut rgb, mut input) = (Vec::new(), Vec::new());
    warp::warp_batch(&images, &jobs, &mut rgb, &mut input).unwrap();
    let (drgb, dinput) = g.warp(&images, &jobs).unwrap();
    assert_eq!(drgb, rgb);
    assert_eq!(dinput, input);
}

#[test]
fn l2_and_topk_and_search_on_device_equal_twin() {
    let Some(g) = gpu() else { return };
    let dim = 128;
    let mut rows = vectors(300, dim, 5);
    let (dev_rows, dev_norms) = g.l2_normalize(&rows, dim).unwrap();
    let norms = search::l2_normalize_rows(&mut rows, dim).unwrap();
    assert_eq!(dev_rows, rows);
    assert_eq!(dev_norms, norms);

    let mut gallery = vectors(100_000, dim, 9);
    search::l2_normalize_rows(&mut gallery, dim).unwrap();
    let queries = &rows[..64 * dim];
    let scores = search::scores(queries, &gallery, dim).unwrap();
    for k in [1, 10, 64] {
        // Top-k on identical scores: identical hits.
        assert_eq!(
            g.topk(&scores, 100_000, k).unwrap(),
            search::topk_rows(&scores, 100_000, k).unwrap()
        );
    }
    // SGEMM + top-k: scores within float rounding, the same best hit unless nearly tied.
    let dg = g.upload_gallery(&gallery, dim).unwrap();
    let dev = g.search(queries, &dg, 10).unwrap();
    let twin = search::search(queries, &gallery, dim, 10).unwrap();
    for (d, t) in dev.iter().zip(&twin) {
        assert!((d[0].score - t[0].score).abs() < 1e-5);
        if t[0].score - t[1].score > 1e-5 {
            assert_eq!(d[0].index, t[0].index);
        }
    }
}

#[test]
fn decode_and_nms_on_device_equal_twin() {
    let Some(g) = gpu() else { return };
    // Synthetic outputs of two 640x480 views with faces near each other and one cut by an
    // interior edge.
    let (w, h) = (640u32, 480u32);
    let mut outs: Vec<Vec<f32>> = Vec::new();
    for s in detect::STRIDES {
        let cells = ((w / s) * (h / s)) as usize * 2;
        outs.push(
            vectors(cells, 1, u64::from(s))
                .iter()
                .map(|v| v + 0.5)
                .collect(),
        );
    }
    for s in detect::STRIDES {
        let cells = ((w / s) * (h / s)) as usize * 2;
        outs.push(
            vectors(cells, 1, u64::from(s) + 1)
                .iter()
                .map(|v| v + 0.5)
                .collect(),
        );
    }
    for s in detect::STRIDES {
        let cells = ((w / s) * (h / s)) as usize * 2;
        outs.push(vectors(cells, 4, u64::from(s) + 2));
    }
    for s in detect::STRIDES {
        let cells = ((w / s) * (h / s)) as usize * 2;
        outs.push(vectors(cells, 10, u64::from(s) + 3));
    }
    let geometry = |interior| ViewGeometry {
        x0: 10.0,
        y0: 20.0,
        scale: 0.5,
        content_w: 640,
        content_h: 470,
        interior,
        img_w: 1400,
        img_h: 1000,
    };
    let view = |v: usize, image: usize, interior| {
        let lv = |li: usize| {
            let cells = ((w / detect::STRIDES[li]) * (h / detect::STRIDES[li])) as usize;
            Level {
                stride: detect::STRIDES[li],
                cls: &outs[li][v * cells..(v + 1) * cells],
                obj: &outs[3 + li][v * cells..(v + 1) * cells],
                bbox: &outs[6 + li][v * cells * 4..(v + 1) * cells * 4],
                kps: &outs[9 + li][v * cells * 10..(v + 1) * cells * 10],
            }
        };
        ViewOutputs {
            image,
            input_w: w,
            geometry: geometry(interior),
            levels: [lv(0), lv(1), lv(2)],
        }
    };
    let views = [
        view(0, 0, [false; 4]),
        view(1, 1, [true, false, true, false]),
    ];
    let twin = detect::detect_batch(&views, 2, 0.7, 0.3, 500).unwrap();
    let dev = g.detect(&views, 2, 0.7, 0.3, 500).unwrap();
    for (d, t) in dev.iter().zip(&twin) {
        let d = d.as_ref().expect("within the device NMS capacity");
        assert_eq!(d.len(), t.len());
        for (a, b) in d.iter().zip(t) {
            assert_eq!(a.score, b.score);
            for (x, y) in a.bbox.iter().zip(&b.bbox) {
                assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
            }
        }
    }
}
