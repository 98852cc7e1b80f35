//! The pipeline on real images (shared/data) with the real models (shared/models):
//! faces found where they are on group photos, same/different persons against
//! `DEFAULT_MATCH_THRESHOLD`, every kind of bad input rejected with its kind and a message naming
//! the problem (the pipeline still works afterwards), and the image formats and variants that
//! must decode (progressive, CMYK and greyscale JPEG, 16-bit and alpha PNG, WebP, EXIF rotation).
//!
//! Fixtures are generated here from the real images; nothing is written to disk.
//! Models: `LIKENESS_MODELS_DIR` or `../shared/models` beside the checkout; data:
//! `LIKENESS_DATA_DIR` or `../shared/data`; ONNX Runtime: `deploy/fetch-onnxruntime.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::LazyLock;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, Rgba};
use likeness_models::decode::{self, DecodeLimits};
use likeness_models::{
    DEFAULT_MATCH_THRESHOLD, Error, Face, ImageErrorKind, Pipeline, PipelineConfig, RgbImage,
    StageTimings,
};

fn models_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models").into())
}

fn data_dir() -> PathBuf {
    std::env::var_os("LIKENESS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data").into())
}

/// One pipeline for all tests (loading verifies hashes and opens the sessions).
static PIPELINE: LazyLock<Pipeline> = LazyLock::new(|| {
    Pipeline::load(PipelineConfig {
        models_dir: models_dir(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("loading the pipeline: {e}"))
});

fn read(rel: &str) -> Vec<u8> {
    let p = data_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn analyze(img: &RgbImage) -> Vec<Face> {
    analyze_timed(img).0
}

/// The faces of one image and the timings (with the detection plan's counts) of its analysis.
fn analyze_timed(img: &RgbImage) -> (Vec<Face>, StageTimings) {
    let mut t = StageTimings::default();
    let faces = PIPELINE
        .analyze(&[img], None, &mut t)
        .pop()
        .unwrap()
        .unwrap();
    (faces, t)
}

fn centre(f: &Face) -> (f32, f32) {
    let b = f.detection.bbox;
    ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
}

/// The largest face of an encoded image.
fn main_face(bytes: &[u8]) -> (RgbImage, Face) {
    let (img, faces) = PIPELINE.analyze_bytes(bytes, None).unwrap();
    let face = faces
        .into_iter()
        .max_by(|a, b| {
            (a.detection.width() * a.detection.height())
                .total_cmp(&(b.detection.width() * b.detection.height()))
        })
        .expect("no face found");
    (img, face)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// ---------------------------------------------------------------------------------------------
// Faces where they are

/// Face centres `(x, y)` and box widths on the group photos: produced by this pipeline and
/// checked by eye (each box drawn on the photo lies on one person's face, and every person's
/// face has a box).
const SOLVAY: [(f32, f32, f32); 29] = [
    (183., 1086., 85.),
    (276., 1196., 83.),
    (455., 1133., 82.),
    (508., 813., 78.),
    (592., 1213., 85.),
    (728., 879., 72.),
    (756., 1096., 79.),
    (882., 942., 76.),
    (901., 1198., 82.),
    (1091., 1097., 87.),
    (1129., 928., 75.),
    (1236., 1213., 93.),
    (1409., 955., 77.),
    (1446., 1075., 78.),
    (1631., 1188., 92.),
    (1632., 897., 74.),
    (1709., 1084., 82.),
    (1880., 909., 78.),
    (1905., 1197., 89.),
    (1992., 1104., 78.),
    (2124., 899., 79.),
    (2153., 1193., 86.),
    (2317., 1112., 84.),
    (2334., 893., 73.),
    (2497., 1210., 83.),
    (2496., 802., 79.),
    (2619., 1129., 86.),
    (2639., 898., 74.),
    (2734., 1245., 86.),
];
const INSIGHTFACE_T1: [(f32, f32, f32); 6] = [
    (114., 332., 107.),
    (320., 214., 105.),
    (517., 339., 102.),
    (797., 411., 100.),
    (956., 130., 99.),
    (1173., 335., 95.),
];
const SELFIE: [(f32, f32, f32); 6] = [
    (36., 297., 68.),
    (149., 368., 119.),
    (258., 191., 99.),
    (418., 201., 128.),
    (538., 422., 124.),
    (563., 139., 74.),
];
const COUPLE: [(f32, f32, f32); 2] = [(638., 901., 617.), (1687., 693., 581.)];

/// Every expected face has exactly one detected box whose centre is within a quarter of the
/// face width of it, there are no other boxes, and every box and landmark lies in the image.
fn check_group(file: &str, size: (u32, u32), expected: &[(f32, f32, f32)]) {
    let (img, faces) = PIPELINE
        .analyze_bytes(&read(&format!("group/{file}")), None)
        .unwrap();
    assert_eq!((img.width, img.height), size, "{file}: decoded size");
    assert_eq!(
        faces.len(),
        expected.len(),
        "{file}: found {} faces, {} people on the photo",
        faces.len(),
        expected.len()
    );
    let (w, h) = (img.width as f32, img.height as f32);
    for f in &faces {
        let [x1, y1, x2, y2] = f.detection.bbox;
        assert!(
            0.0 <= x1 && x1 < x2 && x2 <= w && 0.0 <= y1 && y1 < y2 && y2 <= h,
            "{file}: box {:?} outside the {w}x{h} image",
            f.detection.bbox
        );
        // Landmarks of a face cut by the image edge may lie outside the (clamped) box.
        let cut = x1 <= 0.5 || y1 <= 0.5 || x2 >= w - 0.5 || y2 >= h - 0.5;
        for [lx, ly] in f.detection.landmarks.iter().copied().filter(|_| !cut) {
            assert!(
                (x1 - 0.1 * (x2 - x1)..=x2 + 0.1 * (x2 - x1)).contains(&lx)
                    && (y1..=y2).contains(&ly),
                "{file}: landmark ({lx}, {ly}) outside its box {:?}",
                f.detection.bbox
            );
        }
        assert_eq!(f.embedding.len(), PIPELINE.embedding_dim());
    }
    let mut used = vec![false; faces.len()];
    for &(ex, ey, ew) in expected {
        let (k, d) = faces
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let (cx, cy) = centre(f);
                (k, ((cx - ex).powi(2) + (cy - ey).powi(2)).sqrt())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            d <= 0.25 * ew,
            "{file}: no face near ({ex}, {ey}); nearest box centre is {d:.0} px away"
        );
        assert!(
            !used[k],
            "{file}: one box matches two people near ({ex}, {ey})"
        );
        used[k] = true;
        let fw = faces[k].detection.width();
        assert!(
            (0.7 * ew..=1.3 * ew).contains(&fw),
            "{file}: face near ({ex}, {ey}) has width {fw}, expected about {ew}"
        );
    }
}

#[test]
fn solvay_1927_finds_all_29_faces_where_they_are() {
    check_group("solvay_conference_1927.png", (3000, 2171), &SOLVAY);
}

#[test]
fn insightface_t1_finds_all_6_faces_where_they_are() {
    check_group("insightface_t1.jpg", (1280, 886), &INSIGHTFACE_T1);
}

#[test]
fn selfie_finds_all_6_faces_where_they_are() {
    check_group("deepface_selfie-many-people.jpg", (600, 604), &SELFIE);
}

#[test]
fn couple_finds_both_faces_where_they_are() {
    check_group("deepface_couple.jpg", (2280, 1588), &COUPLE);
}

// ---------------------------------------------------------------------------------------------
// Same person, different persons

fn similarity(a: &str, b: &str) -> f32 {
    let (_, fa) = main_face(&read(a));
    let (_, fb) = main_face(&read(b));
    cosine(&fa.embedding, &fb.embedding)
}

#[test]
fn embeddings_are_unit_length() {
    let (_, f) = main_face(&read("photos/img10.jpg"));
    let n: f32 = f.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((n - 1.0).abs() < 1e-3, "norm {n}");
}

#[test]
fn same_person_scores_above_the_threshold() {
    for (a, b) in [
        ("photos/img5.jpg", "photos/img10.jpg"),
        ("photos/img16.jpg", "photos/img17.jpg"),
        (
            "faces_dev/Al_Pacino_1800_crop.jpg",
            "faces_dev/Al_Pacino_1805_crop.jpg",
        ),
        (
            "faces_dev/Alfred_Molina_3937_crop.jpg",
            "faces_dev/Alfred_Molina_3938_crop.jpg",
        ),
    ] {
        let s = similarity(a, b);
        eprintln!("{a} vs {b}: {s:.3}");
        assert!(
            s > DEFAULT_MATCH_THRESHOLD + 0.15,
            "{a} vs {b}: cosine {s:.3}, threshold {DEFAULT_MATCH_THRESHOLD}"
        );
    }
}

#[test]
fn different_persons_score_below_the_threshold() {
    for (a, b) in [
        ("photos/img10.jpg", "photos/img21.jpg"),
        ("photos/img25.jpg", "photos/img21.jpg"),
        (
            "faces_dev/Al_Pacino_1800_crop.jpg",
            "faces_dev/Alyssa_Milano_113899_crop.jpg",
        ),
        (
            "faces_dev/Alfred_Molina_3937_crop.jpg",
            "faces_dev/Alan_Arkin_2511_crop.jpg",
        ),
    ] {
        let s = similarity(a, b);
        eprintln!("{a} vs {b}: {s:.3}");
        assert!(
            s < DEFAULT_MATCH_THRESHOLD - 0.1,
            "{a} vs {b}: cosine {s:.3}, threshold {DEFAULT_MATCH_THRESHOLD}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad inputs

/// The pipeline still decodes and finds the face of a good image.
fn still_works() {
    let (img, faces) = PIPELINE
        .analyze_bytes(&read("photos/img10.jpg"), None)
        .unwrap();
    assert_eq!((img.width, img.height), (408, 594));
    assert_eq!(faces.len(), 1);
}

/// `bytes` fails with `kind` and a message containing every phrase (case-insensitive), both
/// through the pipeline and through `decode` with default limits; the pipeline still works.
fn assert_rejected(bytes: &[u8], kind: ImageErrorKind, phrases: &[&str]) {
    let err = PIPELINE
        .analyze_bytes(bytes, None)
        .err()
        .unwrap_or_else(|| panic!("accepted; expected {kind:?} with {phrases:?}"));
    check_error(&err, kind, phrases);
    still_works();
}

fn check_error(err: &Error, kind: ImageErrorKind, phrases: &[&str]) {
    let msg = err.to_string();
    eprintln!("{kind:?}: {msg}");
    assert!(
        matches!(err, Error::Image { .. }),
        "not a per-image error: {err:?}"
    );
    assert_eq!(err.image_kind(), kind, "message: {msg}");
    for p in phrases {
        assert!(
            msg.to_lowercase().contains(&p.to_lowercase()),
            "message {msg:?} does not mention {p:?}"
        );
    }
}

/// A small real JPEG (a face photo, re-encoded baseline).
fn face_jpeg() -> Vec<u8> {
    read("photos/img10.jpg")
}

fn face_rgb() -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    image::load_from_memory(&face_jpeg()).unwrap().to_rgb8()
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn face_png() -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(face_rgb()), ImageFormat::Png)
}

#[test]
fn empty_input_is_rejected() {
    assert_rejected(&[], ImageErrorKind::Empty, &["empty", "0 bytes"]);
}

#[test]
fn text_is_not_an_image() {
    assert_rejected(
        b"name,consent\nAda,yes\n",
        ImageErrorKind::UnsupportedFormat,
        &["not an image", "JPEG, PNG or WebP"],
    );
}

#[test]
fn gif_is_an_unsupported_format() {
    // A complete 1x1 GIF.
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    assert_rejected(
        gif,
        ImageErrorKind::UnsupportedFormat,
        &["unsupported image format", "gif", "only JPEG, PNG and WebP"],
    );
}

#[test]
fn bmp_is_an_unsupported_format() {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 60]);
    assert_rejected(
        &bmp,
        ImageErrorKind::UnsupportedFormat,
        &["unsupported image format", "bmp"],
    );
}

/// The image crate runs zune-jpeg in non-strict mode, which fills missing data with grey: a JPEG
/// cut in half must still be rejected (decode.rs checks for the end-of-image marker).
#[test]
fn truncated_jpeg_is_corrupt() {
    let jpeg = face_jpeg();
    assert_rejected(
        &jpeg[..jpeg.len() / 2],
        ImageErrorKind::Corrupt,
        &["jpeg", "truncated"],
    );
}

#[test]
fn truncated_png_is_corrupt() {
    let png = face_png();
    assert_rejected(
        &png[..png.len() / 2],
        ImageErrorKind::Corrupt,
        &["png", "truncated"],
    );
}

#[test]
fn jpeg_with_a_marker_inside_its_scan_data_is_corrupt() {
    let mut jpeg = face_jpeg();
    let mid = jpeg.len() / 2;
    // A DHT marker where entropy-coded data should be: what follows is no valid table.
    jpeg[mid] = 0xFF;
    jpeg[mid + 1] = 0xC4;
    assert_rejected(
        &jpeg,
        ImageErrorKind::Corrupt,
        &["jpeg", "corrupt", "huffman"],
    );
}

/// A camera-style JPEG: EXIF with a thumbnail (itself a complete JPEG, SOS to EOI) before the
/// main image; cut in half, only the main image is truncated.
#[test]
fn truncated_jpeg_with_an_exif_thumbnail_is_corrupt() {
    let rgb = face_rgb();
    let thumb = image::imageops::thumbnail(&rgb, 40, 58);
    let thumb = encode_jpeg(thumb.as_raw(), 40, 58, jpeg_encoder::ColorType::Rgb, false);
    let jpeg = insert_after_soi(&face_jpeg(), &exif_segment(1, Some(&thumb)));
    // The whole file decodes, upright, with its face.
    let (img, faces) = PIPELINE.analyze_bytes(&jpeg, None).unwrap();
    assert_eq!((img.width, img.height, faces.len()), (408, 594, 1));
    assert_rejected(
        &jpeg[..jpeg.len() / 2],
        ImageErrorKind::Corrupt,
        &["jpeg", "truncated"],
    );
}

// Garbage inside JPEG entropy-coded data is not detectable in general (random bits still
// Huffman-decode; libjpeg only warns): such a file is analysed as the damaged picture a
// viewer would show, never a panic or a wrong size, and the pipeline keeps working.
#[test]
fn jpeg_with_garbage_in_its_scan_data_is_analysed_as_shown() {
    for fill in [0usize, 1] {
        let mut jpeg = face_jpeg();
        let mid = jpeg.len() / 2;
        for (k, b) in jpeg[mid..mid + 4096].iter_mut().enumerate() {
            *b = if fill == 0 {
                (k * 7919 % 251) as u8
            } else {
                0xFF
            };
        }
        match PIPELINE.analyze_bytes(&jpeg, None) {
            Ok((img, faces)) => {
                assert_eq!((img.width, img.height), (408, 594));
                assert!(
                    faces.len() <= 2,
                    "{} faces in a damaged one-face photo",
                    faces.len()
                );
            }
            Err(e) => check_error(&e, ImageErrorKind::Corrupt, &["jpeg"]),
        }
        still_works();
    }
}

#[test]
fn jpeg_with_a_broken_header_is_corrupt() {
    let mut jpeg = face_jpeg();
    // Cut the file right after the first segment header: the segment claims more bytes
    // than follow.
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg.truncate(sof + 6);
    assert_rejected(&jpeg, ImageErrorKind::Corrupt, &["jpeg"]);
}

#[test]
fn png_with_bad_checksum_is_corrupt() {
    let mut png = face_png();
    // Flip one byte of the IDAT payload: its CRC no longer matches.
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
    png[idat + 20] ^= 0x55;
    assert_rejected(&png, ImageErrorKind::Corrupt, &["png", "corrupt"]);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A 100-byte PNG whose header claims 100000 x 100000 RGB pixels (30 GB decoded).
fn png_bomb_header() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, adaptive, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes (the start of the first row).
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn crc32_matches_the_png_reference() {
    // The CRC of an IEND chunk is fixed: AE 42 60 82.
    assert_eq!(crc32(b"IEND"), 0xAE42_6082);
}

#[test]
fn png_header_bomb_is_rejected_before_decoding() {
    let bomb = png_bomb_header();
    assert!(bomb.len() < 100);
    assert_rejected(
        &bomb,
        ImageErrorKind::LimitsExceeded,
        &["100000x100000", "decompression bomb"],
    );
}

/// A valid 1-bit greyscale PNG of 20000 x 20000 white pixels: about 60 KB on disk,
/// 400 megapixels (1.2 GB as RGB) decoded.
fn huge_valid_png() -> Vec<u8> {
    let (w, h) = (20_000u32, 20_000u32);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0xFFu8; w.div_ceil(8) as usize];
    for _ in 0..h {
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn huge_valid_png_exceeds_max_pixels() {
    let png = huge_valid_png();
    assert!(png.len() < 2 << 20, "{} bytes", png.len());
    // It is a valid PNG: the header reads fine.
    let (w, h) = image::ImageReader::with_format(Cursor::new(&png), ImageFormat::Png)
        .into_dimensions()
        .unwrap();
    assert_eq!((w, h), (20_000, 20_000));
    assert_rejected(
        &png,
        ImageErrorKind::LimitsExceeded,
        &["20000x20000", "400000000 pixels", "limit"],
    );
}

#[test]
fn image_needing_more_memory_than_allowed_exceeds_the_limits() {
    let limits = DecodeLimits {
        max_alloc_bytes: 100_000,
        ..DecodeLimits::default()
    };
    let err = decode::decode(&face_png(), &limits).unwrap_err();
    check_error(
        &err,
        ImageErrorKind::LimitsExceeded,
        &["408x594", "100000 bytes"],
    );
}

#[test]
fn input_over_max_bytes_is_too_large() {
    let jpeg = face_jpeg();
    let small = Pipeline::load(PipelineConfig {
        models_dir: models_dir(),
        decode: DecodeLimits {
            max_bytes: 10_000,
            ..DecodeLimits::default()
        },
        ..Default::default()
    })
    .unwrap();
    let err = small.analyze_bytes(&jpeg, None).unwrap_err();
    check_error(
        &err,
        ImageErrorKind::TooLarge,
        &[&format!("{} bytes", jpeg.len()), "limit of 10000 bytes"],
    );
    // Within the limit it works.
    let tiny = encode(
        DynamicImage::ImageRgb8(ImageBuffer::from_pixel(8, 8, Rgb([200, 100, 50]))),
        ImageFormat::Png,
    );
    assert!(tiny.len() < 10_000);
    let (img, faces) = small.analyze_bytes(&tiny, None).unwrap();
    assert_eq!((img.width, img.height, faces.len()), (8, 8, 0));
    still_works();
}

// ---------------------------------------------------------------------------------------------
// Formats and variants that must decode

/// Mean absolute difference per channel value.
fn mean_abs_diff(a: &RgbImage, b: &[u8]) -> f64 {
    assert_eq!(a.data.len(), b.len());
    a.data
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / b.len() as f64
}

/// The reference: the face photo decoded directly, and its one face.
fn reference() -> (ImageBuffer<Rgb<u8>, Vec<u8>>, Face) {
    let rgb = face_rgb();
    let img = RgbImage::new(rgb.width(), rgb.height(), rgb.as_raw().clone()).unwrap();
    let faces = analyze(&img);
    assert_eq!(faces.len(), 1);
    (rgb, faces.into_iter().next().unwrap())
}

/// `bytes` decodes to the reference's size, within `max_diff` of `expected` pixels, and the
/// face is found where it is on the reference and matches it.
fn assert_decodes_like(bytes: &[u8], expected: &[u8], max_diff: f64, what: &str) {
    let (rgb, ref_face) = reference();
    let (img, faces) = PIPELINE
        .analyze_bytes(bytes, None)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (img.width, img.height),
        rgb.dimensions(),
        "{what}: decoded size"
    );
    let d = mean_abs_diff(&img, expected);
    assert!(
        d <= max_diff,
        "{what}: mean pixel difference {d:.2} > {max_diff}"
    );
    assert_eq!(faces.len(), 1, "{what}: faces found");
    let (cx, cy) = centre(&faces[0]);
    let (rx, ry) = centre(&ref_face);
    let tol = 0.1 * ref_face.detection.width();
    assert!(
        (cx - rx).abs() < tol && (cy - ry).abs() < tol,
        "{what}: face at ({cx}, {cy}), reference ({rx}, {ry})"
    );
    let s = cosine(&faces[0].embedding, &ref_face.embedding);
    assert!(s > 0.8, "{what}: cosine to the reference {s:.3}");
}

fn encode_jpeg(
    data: &[u8],
    w: u32,
    h: u32,
    ct: jpeg_encoder::ColorType,
    progressive: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 92);
    enc.set_progressive(progressive);
    enc.encode(data, w as u16, h as u16, ct).unwrap();
    out
}

#[test]
fn progressive_jpeg_decodes() {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    let jpeg = encode_jpeg(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb, true);
    // SOF2 marks a progressive JPEG.
    assert!(jpeg.windows(2).any(|m| m == [0xFF, 0xC2]));
    assert_decodes_like(&jpeg, rgb.as_raw(), 4.0, "progressive JPEG");
}

#[test]
fn cmyk_jpeg_decodes_with_the_right_colours() {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    // Naive CMYK (K = 0); the encoder writes it inverted with an Adobe marker, as Photoshop.
    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let jpeg = encode_jpeg(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk, false);
    assert!(jpeg.windows(5).any(|m| m == b"Adobe"));
    assert_decodes_like(&jpeg, rgb.as_raw(), 6.0, "CMYK JPEG");
}

#[test]
fn ycck_jpeg_decodes_with_the_right_colours() {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let jpeg = encode_jpeg(&cmyk, w, h, jpeg_encoder::ColorType::CmykAsYcck, false);
    assert_decodes_like(&jpeg, rgb.as_raw(), 6.0, "YCCK JPEG");
}

#[test]
fn greyscale_jpeg_decodes() {
    let grey = DynamicImage::ImageRgb8(face_rgb()).to_luma8();
    let (w, h) = grey.dimensions();
    let jpeg = encode_jpeg(grey.as_raw(), w, h, jpeg_encoder::ColorType::Luma, false);
    let expected: Vec<u8> = grey.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
    assert_decodes_like(&jpeg, &expected, 3.0, "greyscale JPEG");
}

#[test]
fn sixteen_bit_png_decodes() {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(w, h, |x, y| {
        Rgb(rgb.get_pixel(x, y).0.map(|v| u16::from(v) * 257))
    });
    let png = encode(DynamicImage::ImageRgb16(rgb16), ImageFormat::Png);
    assert_eq!(png[24], 16, "bit depth in IHDR");
    assert_decodes_like(&png, rgb.as_raw(), 0.0, "16-bit PNG");
}

#[test]
fn png_with_alpha_decodes() {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    // Alpha from 255 at the top to 55 at the bottom; colours unchanged.
    let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(w, h, |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        Rgba([r, g, b, (255 - 200 * y / h) as u8])
    });
    let png = encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    assert_eq!(png[25], 6, "colour type RGBA in IHDR");
    assert_decodes_like(&png, rgb.as_raw(), 0.0, "RGBA PNG");
}

#[test]
fn webp_decodes() {
    let rgb = face_rgb();
    let webp = encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::WebP);
    assert_eq!(&webp[8..12], b"WEBP");
    assert_decodes_like(&webp, rgb.as_raw(), 0.0, "lossless WebP");
}

#[test]
fn webp_named_jpg_in_the_data_decodes() {
    // photos/img47.jpg is a lossy WebP file with a .jpg name: the format is sniffed.
    let (img, faces) = PIPELINE
        .analyze_bytes(&read("photos/img47.jpg"), None)
        .unwrap();
    assert_eq!((img.width, img.height), (1350, 1800));
    assert!(!faces.is_empty());
}

/// An EXIF APP1 segment (big-endian TIFF) with the orientation tag in IFD0 and, if given, a
/// JPEG thumbnail in IFD1, as cameras write them.
fn exif_segment(orientation: u16, thumbnail: Option<&[u8]>) -> Vec<u8> {
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, value: u32| {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&typ.to_be_bytes());
        t.extend_from_slice(&1u32.to_be_bytes()); // count
        t.extend_from_slice(&value.to_be_bytes());
    };
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2a");
    tiff.extend_from_slice(&8u32.to_be_bytes()); // IFD0 at 8
    tiff.extend_from_slice(&1u16.to_be_bytes());
    // Orientation, SHORT: the value sits in the first two of the four value bytes.
    entry(&mut tiff, 0x0112, 3, u32::from(orientation) << 16);
    let ifd1 = if thumbnail.is_some() { 26u32 } else { 0 };
    tiff.extend_from_slice(&ifd1.to_be_bytes());
    if let Some(thumb) = thumbnail {
        assert_eq!(tiff.len(), 26);
        tiff.extend_from_slice(&2u16.to_be_bytes());
        entry(&mut tiff, 0x0201, 4, 56); // JPEGInterchangeFormat (offset)
        entry(&mut tiff, 0x0202, 4, thumb.len() as u32); // JPEGInterchangeFormatLength
        tiff.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(tiff.len(), 56);
        tiff.extend_from_slice(thumb);
    }
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    seg.extend_from_slice(&payload);
    seg
}

/// `jpeg` with `segment` inserted right after SOI.
fn insert_after_soi(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A JPEG of `stored` pixels with an EXIF orientation segment right after SOI.
fn jpeg_with_orientation(stored: &ImageBuffer<Rgb<u8>, Vec<u8>>, orientation: u16) -> Vec<u8> {
    let (w, h) = stored.dimensions();
    let jpeg = encode_jpeg(stored.as_raw(), w, h, jpeg_encoder::ColorType::Rgb, false);
    insert_after_soi(&jpeg, &exif_segment(orientation, None))
}

/// Eyes above the nose above the mouth, eyes side by side: the face is upright.
fn assert_upright(f: &Face, what: &str) {
    let l = f.detection.landmarks;
    let eyes_y = (l[0][1] + l[1][1]) / 2.0;
    let mouth_y = (l[3][1] + l[4][1]) / 2.0;
    assert!(
        eyes_y < l[2][1] && l[2][1] < mouth_y,
        "{what}: not upright: {l:?}"
    );
    assert!(
        l[0][0] < l[1][0] && (l[0][1] - l[1][1]).abs() < 0.5 * (l[1][0] - l[0][0]),
        "{what}: eyes not side by side: {l:?}"
    );
}

#[test]
fn exif_orientation_6_and_8_are_applied() {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    assert_ne!(w, h);
    // Orientation 6: the viewer turns the stored pixels 90° clockwise, so a camera held
    // sideways stores the scene turned 90° counter-clockwise; 8 is the mirror case.
    for (orientation, stored) in [
        (6u16, image::imageops::rotate270(&rgb)),
        (8u16, image::imageops::rotate90(&rgb)),
    ] {
        assert_eq!(stored.dimensions(), (h, w));
        let jpeg = jpeg_with_orientation(&stored, orientation);
        let what = format!("EXIF orientation {orientation}");
        assert_decodes_like(&jpeg, rgb.as_raw(), 4.0, &what);
        let (_, faces) = PIPELINE.analyze_bytes(&jpeg, None).unwrap();
        assert_upright(&faces[0], &what);
        // Without the tag the same pixels decode sideways (the tag is what turns them).
        let plain = encode_jpeg(stored.as_raw(), h, w, jpeg_encoder::ColorType::Rgb, false);
        let img = PIPELINE.decode(&plain).unwrap();
        assert_eq!((img.width, img.height), (h, w));
    }
}

// ---------------------------------------------------------------------------------------------
// Reduced-scale decoding (issue 16)

/// The face photo scaled up 7x (bilinear) into a JPEG of over 4000 px: the detector needs
/// at most 1920 px of it, so it is decoded at half scale.
fn large_face_jpeg(turn: Option<u16>) -> (Vec<u8>, (u32, u32)) {
    let rgb = face_rgb();
    let (w, h) = rgb.dimensions();
    let big = image::imageops::resize(&rgb, w * 7, h * 7, image::imageops::FilterType::Triangle);
    let size = big.dimensions();
    assert!(
        size.0.max(size.1) >= 3840,
        "{size:?}: too small to be reduced"
    );
    let jpeg = match turn {
        None => encode_jpeg(
            big.as_raw(),
            size.0,
            size.1,
            jpeg_encoder::ColorType::Rgb,
            false,
        ),
        Some(o) => jpeg_with_orientation(&image::imageops::rotate270(&big), o),
    };
    (jpeg, size)
}

#[test]
fn large_jpeg_is_decoded_reduced_and_its_faces_reported_in_file_pixels() {
    let (jpeg, (w, h)) = large_face_jpeg(None);
    let img = PIPELINE.decode(&jpeg).unwrap();
    assert!(img.is_reduced(), "{}x{} not reduced", img.width, img.height);
    assert_eq!((img.source_width, img.source_height), (w, h));
    assert_eq!(img.width, w.div_ceil(2));
    let (_, reduced) = PIPELINE.analyze_bytes(&jpeg, None).unwrap();
    // The same file decoded at full size through the same pipeline.
    let full = decode::decode(&jpeg, &DecodeLimits::default()).unwrap();
    assert!(!full.is_reduced());
    let whole = analyze(&full);
    assert_eq!(reduced.len(), 1, "faces on the reduced decode");
    assert_eq!(whole.len(), 1, "faces on the full decode");
    let (a, b) = (&reduced[0], &whole[0]);
    let (ca, cb) = (centre(a), centre(b));
    let tol = 0.05 * b.detection.width();
    assert!(
        (ca.0 - cb.0).abs() < tol && (ca.1 - cb.1).abs() < tol,
        "reduced decode reports the face at {ca:?}, full decode at {cb:?}"
    );
    let ratio = a.detection.width() / b.detection.width();
    assert!((0.95..1.05).contains(&ratio), "box width ratio {ratio}");
    assert!(
        (a.quality.face_size - b.quality.face_size).abs() < 0.05 * b.quality.face_size,
        "face size {} vs {}",
        a.quality.face_size,
        b.quality.face_size
    );
    let s = cosine(&a.embedding, &b.embedding);
    assert!(s > 0.95, "embedding cosine reduced vs full decode {s:.3}");
}

#[test]
fn reduced_decode_applies_the_exif_orientation() {
    let (jpeg, (w, h)) = large_face_jpeg(Some(6));
    let img = PIPELINE.decode(&jpeg).unwrap();
    assert!(img.is_reduced());
    // Stored sideways, shown (and reported) upright at the file's full size.
    assert_eq!((img.source_width, img.source_height), (w, h));
    assert_eq!(
        img.width < img.height,
        w < h,
        "decoded {}x{}",
        img.width,
        img.height
    );
    let (_, faces) = PIPELINE.analyze_bytes(&jpeg, None).unwrap();
    assert_eq!(faces.len(), 1);
    assert_upright(&faces[0], "reduced decode, EXIF orientation 6");
}

#[test]
fn reduced_decode_can_be_turned_off() {
    let (jpeg, (w, h)) = large_face_jpeg(None);
    let p = Pipeline::load(PipelineConfig {
        models_dir: models_dir(),
        reduced_decode: false,
        ..Default::default()
    })
    .unwrap();
    let img = p.decode(&jpeg).unwrap();
    assert_eq!((img.width, img.height), (w, h));
    assert!(!img.is_reduced());
}

#[test]
fn truncated_large_jpeg_is_still_corrupt() {
    let (jpeg, _) = large_face_jpeg(None);
    let cut = &jpeg[..jpeg.len() * 2 / 3];
    let e = PIPELINE.decode(cut).unwrap_err();
    check_error(&e, ImageErrorKind::Corrupt, &["truncated JPEG"]);
    still_works();
}

#[test]
fn a_large_portrait_skips_the_detail_view_and_refines_its_face() {
    let (jpeg, _) = large_face_jpeg(None);
    let img = PIPELINE.decode(&jpeg).unwrap();
    let (faces, t) = analyze_timed(&img);
    assert_eq!(faces.len(), 1);
    assert_eq!(t.detail_skipped, 1, "{t:?}");
    // The face fills the whole-image view: nothing to refine, one view in all.
    assert_eq!(t.detect_views, 1, "{t:?}");
}

#[test]
fn solvay_runs_the_detail_view_for_its_small_faces() {
    let img = PIPELINE
        .decode(&read("group/solvay_conference_1927.png"))
        .unwrap();
    let (faces, t) = analyze_timed(&img);
    assert_eq!(faces.len(), 29);
    assert_eq!((t.detail_skipped, t.detect_views), (0, 2), "{t:?}");
}

#[test]
fn a_face_small_in_the_whole_view_is_located_again_in_a_crop() {
    // The face photo (408x594) in the middle of a 1536x1152 grey canvas: ~60 px in the
    // 640 view, no hint of smaller faces, so no detail view but one refinement crop.
    let rgb = face_rgb();
    let mut canvas = ImageBuffer::from_pixel(1536, 1152, Rgb([128u8, 128, 128]));
    image::imageops::replace(&mut canvas, &rgb, 564, 279);
    let img = RgbImage::new(1536, 1152, canvas.into_raw()).unwrap();
    let (faces, t) = analyze_timed(&img);
    assert_eq!(faces.len(), 1);
    assert_eq!(
        (t.detail_skipped, t.faces_refined, t.detect_views),
        (1, 1, 2),
        "{t:?}"
    );
    // Where the face is on the photo itself, shifted by the paste offset.
    let (_, alone) = main_face(&face_jpeg());
    let ((cx, cy), (rx, ry)) = (centre(&faces[0]), centre(&alone));
    let tol = 0.05 * alone.detection.width();
    assert!(
        (cx - 564.0 - rx).abs() < tol && (cy - 279.0 - ry).abs() < tol,
        "refined face at ({cx}, {cy}), expected ({}, {})",
        rx + 564.0,
        ry + 279.0
    );
    assert!(cosine(&faces[0].embedding, &alone.embedding) > 0.9);
}

// ---------------------------------------------------------------------------------------------
// Lanes: callers on several threads in parallel

#[test]
fn lane_plan_shares_the_threads_among_the_lanes() {
    let plan = |threads, lanes| {
        PipelineConfig {
            threads,
            lanes,
            ..Default::default()
        }
        .lane_plan()
    };
    assert_eq!(
        plan(2, 0),
        (2, 1),
        "default: one single-threaded lane per thread"
    );
    assert_eq!(plan(4, 0), (4, 1));
    assert_eq!(
        plan(16, 0),
        (4, 4),
        "at most four lanes by default (memory)"
    );
    assert_eq!(plan(6, 0), (3, 2), "every thread in use");
    assert_eq!(plan(5, 0), (4, 1));
    assert_eq!(plan(3, 0), (3, 1));
    assert_eq!(plan(2, 1), (1, 2), "one lane on all the threads");
    assert_eq!(plan(8, 2), (2, 4));
    assert_eq!(
        plan(1, 3),
        (3, 1),
        "more lanes than threads: single-threaded"
    );
    assert_eq!(plan(0, 0), (1, 1), "threads 0 counts as 1");
}

/// Four callers at once on a two-lane pipeline find the same faces, with the same
/// embeddings, as one caller on a one-lane pipeline: the lanes share nothing but the models.
#[test]
fn two_lanes_serve_four_callers_with_the_faces_of_one_lane() {
    let load = |lanes| {
        Pipeline::load(PipelineConfig {
            models_dir: models_dir(),
            threads: 2,
            lanes,
            ..Default::default()
        })
        .unwrap()
    };
    let (one, two) = (load(1), load(2));
    assert_eq!((one.lanes(), two.lanes()), (1, 2));
    let files = [
        "group/insightface_t1.jpg",
        "group/deepface_selfie-many-people.jpg",
        "group/deepface_couple.jpg",
        "photos/img10.jpg",
    ];
    let blobs: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let expected: Vec<Vec<Face>> = blobs
        .iter()
        .map(|b| one.analyze_bytes(b, None).unwrap().1)
        .collect();
    // Each caller analyses every file three times, starting at a different one, so that the
    // lanes are contended and every file meets both lanes.
    std::thread::scope(|s| {
        for caller in 0..4 {
            let (two, blobs, expected) = (&two, &blobs, &expected);
            s.spawn(move || {
                for k in 0..3 * blobs.len() {
                    let i = (caller + k) % blobs.len();
                    let got = two.analyze_bytes(&blobs[i], None).unwrap().1;
                    let want = &expected[i];
                    assert_eq!(got.len(), want.len(), "{}: face count", files[i]);
                    for (g, w) in got.iter().zip(want) {
                        let d = g
                            .detection
                            .bbox
                            .iter()
                            .zip(&w.detection.bbox)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f32::max);
                        assert!(d < 1.0, "{}: boxes {d} px apart", files[i]);
                        let c = cosine(&g.embedding, &w.embedding);
                        assert!(c > 0.999, "{}: embeddings cosine {c}", files[i]);
                    }
                }
            });
        }
    });
}
