//! Probing real photos from ../shared/data: sizes, sha256, thumbnails, EXIF orientation and the
//! perceptual hash (a resized and recompressed copy is near, other photos are far).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use image::codecs::jpeg::JpegEncoder;
use likeness_control_media::phash::{NEAR_DUPLICATE_MAX_DISTANCE, hamming};
use likeness_control_media::probe::sha256_hex;
use likeness_control_media::{MediaKind, ProbeLimits, probe};

fn data_dir() -> PathBuf {
    std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Decodes, resizes to `scale` and re-encodes as JPEG at `quality`.
fn resized_copy(bytes: &[u8], scale: f32, quality: u8) -> Vec<u8> {
    let img = image::load_from_memory(bytes).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let small = image::imageops::resize(
        &img,
        ((w as f32) * scale) as u32,
        ((h as f32) * scale) as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&small)
        .unwrap();
    out
}

#[test]
fn real_photo_probe() {
    let bytes = data("photos/img1.jpg");
    let p = probe(&bytes, &ProbeLimits::default()).unwrap();
    let real = image::load_from_memory(&bytes).unwrap();
    assert_eq!(p.kind, MediaKind::Image);
    assert_eq!(p.mime, "image/jpeg");
    assert_eq!(p.sha256, sha256_hex(&bytes));
    assert_eq!(p.size_bytes, bytes.len() as u64);
    assert_eq!(
        (p.width.unwrap(), p.height.unwrap()),
        (real.width(), real.height())
    );
    let t = image::load_from_memory(p.thumbnail_jpeg.as_ref().unwrap()).unwrap();
    assert_eq!(
        t.width().max(t.height()),
        320.min(real.width().max(real.height()))
    );
    let ar = f64::from(real.width()) / f64::from(real.height());
    let at = f64::from(t.width()) / f64::from(t.height());
    assert!((ar - at).abs() < 0.02, "{ar} vs {at}");

    let png = data("group/solvay_conference_1927.png");
    let p = probe(&png, &ProbeLimits::default()).unwrap();
    assert_eq!(p.mime, "image/png");
    assert_eq!((p.width, p.height), (Some(3000), Some(2171)));
}

#[test]
fn limits_and_corrupt_files_are_refused() {
    let bytes = data("photos/img1.jpg");
    let tight = ProbeLimits {
        max_pixels: 10_000,
        ..ProbeLimits::default()
    };
    assert_eq!(probe(&bytes, &tight).unwrap_err().code(), "limits_exceeded");
    let tiny = ProbeLimits {
        max_image_bytes: 1000,
        ..ProbeLimits::default()
    };
    let e = probe(&bytes, &tiny).unwrap_err();
    assert_eq!(e.code(), "too_large");
    assert!(e.to_string().contains("1000"), "{e}");
    let e = probe(&bytes[..bytes.len() / 2], &ProbeLimits::default()).unwrap_err();
    assert_eq!(e.code(), "corrupt", "{e}");
}

#[test]
fn exif_orientation_swaps_width_and_height() {
    // A real photo re-encoded with an EXIF block saying "rotate 90° clockwise" (orientation 6).
    let src = image::load_from_memory(&data("photos/img1.jpg"))
        .unwrap()
        .to_rgb8();
    let (w, h) = src.dimensions();
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&src)
        .unwrap();
    // APP1 Exif: big-endian TIFF with one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    let p = probe(&out, &ProbeLimits::default()).unwrap();
    assert_eq!((p.width.unwrap(), p.height.unwrap()), (h, w));
    let t = image::load_from_memory(p.thumbnail_jpeg.as_ref().unwrap()).unwrap();
    assert_eq!(t.width() > t.height(), h > w, "thumbnail is upright");
}

#[test]
fn perceptual_hash_near_for_copies_far_for_other_photos() {
    let names = [
        "photos/img1.jpg",
        "photos/img2.jpg",
        "photos/img3.jpg",
        "photos/img11.jpg",
        "photos/img20.jpg",
        "photos/img30.jpg",
        "photos/img40.jpg",
        "group/insightface_t1.jpg",
        "group/deepface_couple.jpg",
        "group/deepface_selfie-many-people.jpg",
    ];
    let l = ProbeLimits::default();
    let mut hashes = Vec::new();
    let mut max_near = 0;
    for n in names {
        let bytes = data(n);
        let h = probe(&bytes, &l).unwrap().phash.unwrap();
        // A half-size copy at JPEG quality 60, and a 0.8 copy at quality 40.
        for (scale, q) in [(0.5, 60), (0.8, 40)] {
            let copy = resized_copy(&bytes, scale, q);
            assert_ne!(sha256_hex(&copy), sha256_hex(&bytes));
            let hc = probe(&copy, &l).unwrap().phash.unwrap();
            let d = hamming(h, hc);
            max_near = max_near.max(d);
            assert!(
                d <= NEAR_DUPLICATE_MAX_DISTANCE,
                "{n}: copy at {scale}/{q} is {d} bits away"
            );
        }
        hashes.push((n, h));
    }
    let mut min_far = 64;
    for (i, (a, ha)) in hashes.iter().enumerate() {
        for (b, hb) in &hashes[i + 1..] {
            let d = hamming(*ha, *hb);
            min_far = min_far.min(d);
            assert!(
                d > NEAR_DUPLICATE_MAX_DISTANCE,
                "{a} and {b} are only {d} bits apart"
            );
        }
    }
    eprintln!("largest copy distance {max_near}, smallest distance between photos {min_far}");
}
