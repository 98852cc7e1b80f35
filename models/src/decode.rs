//! Decoding of untrusted image bytes with limits and EXIF orientation.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::error::{Error, ImageErrorKind, Result};

/// Limits applied to every input before and while decoding it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeLimits {
    /// Largest accepted encoded file, in bytes.
    pub max_bytes: usize,
    /// Largest accepted width x height (checked from the header, before decoding).
    pub max_pixels: u64,
    /// Largest allocation the decoder may make, in bytes.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_pixels: 64_000_000,
            max_alloc_bytes: 512 << 20,
        }
    }
}

/// A decoded, oriented RGB8 image.
#[derive(Debug, Clone)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Interleaved RGB, row-major, `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Wraps an RGB buffer; `None` if its length does not match.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        (data.len() == width as usize * height as usize * 3).then_some(Self {
            width,
            height,
            data,
        })
    }
}

fn err(kind: ImageErrorKind, msg: impl Into<String>) -> Error {
    Error::image(kind, msg)
}

fn classify(e: image::ImageError, what: &str) -> Error {
    use image::ImageError as E;
    match e {
        E::Limits(l) => err(
            ImageErrorKind::LimitsExceeded,
            format!("{what}: decoder limits exceeded ({l})"),
        ),
        E::Unsupported(u) => err(
            ImageErrorKind::UnsupportedFormat,
            format!("{what}: unsupported image ({u})"),
        ),
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => err(
            ImageErrorKind::Corrupt,
            format!("{what}: truncated file (unexpected end of data)"),
        ),
        other => err(
            ImageErrorKind::Corrupt,
            format!("{what}: corrupt image ({other})"),
        ),
    }
}

/// Sniffs the format from the magic bytes; only JPEG, PNG and WebP are accepted.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => Ok(f),
        Ok(other) => Err(err(
            ImageErrorKind::UnsupportedFormat,
            format!(
                "unsupported image format {:?}: only JPEG, PNG and WebP are accepted",
                other
            ),
        )),
        Err(_) => Err(err(
            ImageErrorKind::UnsupportedFormat,
            "not an image: the data does not start with a JPEG, PNG or WebP signature",
        )),
    }
}

/// Decodes `bytes` into an oriented RGB8 image, enforcing `limits`.
///
/// Greyscale, 16-bit, alpha and CMYK inputs are converted to RGB8 (alpha is dropped).
/// EXIF orientation is applied, so the result is upright as a viewer shows it.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(err(
            ImageErrorKind::Empty,
            "empty input: the file has 0 bytes",
        ));
    }
    if bytes.len() > limits.max_bytes {
        return Err(err(
            ImageErrorKind::TooLarge,
            format!(
                "file too large: {} bytes exceeds the limit of {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let format = sniff(bytes)?;
    let what = format!("{format:?}");
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes)?;
    }

    let mut il = image::Limits::default();
    il.max_alloc = Some(limits.max_alloc_bytes);
    let max_side = u32::try_from(limits.max_pixels.min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
    il.max_image_width = Some(max_side);
    il.max_image_height = Some(max_side);

    // Header first: reject decompression bombs before any pixel buffer is allocated.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(il.clone());
    let (w, h) = reader.into_dimensions().map_err(|e| classify(e, &what))?;
    check_dims(w, h, limits)?;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(il);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, &what))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, &what))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let rgb = match img {
        DynamicImage::ImageRgb8(b) => b,
        other => other.to_rgb8(),
    };
    let (width, height) = rgb.dimensions();
    Ok(RgbImage {
        width,
        height,
        data: rgb.into_raw(),
    })
}

/// The JPEG decoder fills a truncated scan with grey instead of failing, so completeness is
/// checked here: the marker segments are walked from the start (skipping APPn segments, which
/// may hold a whole thumbnail JPEG) to the first start-of-scan, and after it there must be an
/// end-of-image marker (inside entropy-coded data 0xFF is always followed by 0x00 or a
/// restart marker, so 0xFFD9 there can only be EOI).
fn check_jpeg_complete(bytes: &[u8]) -> Result<()> {
    let truncated = |what: &str| {
        err(
            ImageErrorKind::Corrupt,
            format!(
                "truncated JPEG: the file ends after {} bytes {what}",
                bytes.len()
            ),
        )
    };
    let mut pos = 2; // after SOI
    let scan = loop {
        // Markers may be preceded by fill bytes 0xFF.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(0xFF), Some(0xDA)) => break pos,
            (Some(0xFF), Some(0xD9)) => {
                return Err(err(
                    ImageErrorKind::Corrupt,
                    "corrupt JPEG: end-of-image marker before any image data",
                ));
            }
            (Some(0xFF), Some(m)) if (0xD0..=0xD7).contains(m) || *m == 0x01 => pos += 2,
            (Some(0xFF), Some(_)) => {
                let len = match (bytes.get(pos + 2), bytes.get(pos + 3)) {
                    (Some(&hi), Some(&lo)) => usize::from(hi) << 8 | usize::from(lo),
                    _ => return Err(truncated("inside a marker segment")),
                };
                if len < 2 {
                    return Err(err(
                        ImageErrorKind::Corrupt,
                        format!("corrupt JPEG: marker segment of length {len} at byte {pos}"),
                    ));
                }
                pos += 2 + len;
                if pos >= bytes.len() {
                    return Err(truncated("before the image data"));
                }
            }
            (None, _) | (_, None) => return Err(truncated("before the image data")),
            (Some(b), _) => {
                return Err(err(
                    ImageErrorKind::Corrupt,
                    format!("corrupt JPEG: expected a marker at byte {pos}, found 0x{b:02X}"),
                ));
            }
        }
    };
    if !bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(truncated("without an end-of-image marker"));
    }
    Ok(())
}

fn check_dims(w: u32, h: u32, limits: &DecodeLimits) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(err(
            ImageErrorKind::Corrupt,
            format!("corrupt image: header says {w}x{h} pixels"),
        ));
    }
    let px = u64::from(w) * u64::from(h);
    if px > limits.max_pixels {
        return Err(err(
            ImageErrorKind::LimitsExceeded,
            format!(
                "image too large: {w}x{h} = {px} pixels exceeds the limit of {} pixels (possible decompression bomb)",
                limits.max_pixels
            ),
        ));
    }
    // RGB8 output plus decoder working memory must fit the allocation limit.
    if px.saturating_mul(3) > limits.max_alloc_bytes {
        return Err(err(
            ImageErrorKind::LimitsExceeded,
            format!(
                "image too large: {w}x{h} needs {} bytes to decode, over the limit of {} bytes",
                px.saturating_mul(3),
                limits.max_alloc_bytes
            ),
        ));
    }
    Ok(())
}
