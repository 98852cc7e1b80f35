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
///
/// It may hold the file at a reduced scale ([`decode_reduced`]): `width x height` pixels
/// showing a `source_width x source_height` picture. Coordinates reported to users are in
/// source pixels ([`RgbImage::to_source`]).
#[derive(Debug, Clone)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Interleaved RGB, row-major, `width * height * 3` bytes.
    pub data: Vec<u8>,
    /// Width of the picture in the file (after orientation); `width` unless decoded reduced.
    pub source_width: u32,
    /// Height of the picture in the file (after orientation).
    pub source_height: u32,
}

impl RgbImage {
    /// Wraps an RGB buffer at full scale; `None` if its length does not match.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        (data.len() == width as usize * height as usize * 3).then_some(Self {
            width,
            height,
            data,
            source_width: width,
            source_height: height,
        })
    }

    /// Whether the pixels are the picture at a reduced scale.
    pub fn is_reduced(&self) -> bool {
        (self.width, self.height) != (self.source_width, self.source_height)
    }

    /// Source pixels per decoded pixel, horizontally and vertically (1.0 at full scale).
    pub fn to_source(&self) -> (f32, f32) {
        (
            self.source_width as f32 / self.width.max(1) as f32,
            self.source_height as f32 / self.height.max(1) as f32,
        )
    }
}

/// The reduction (1, 2, 4 or 8) of a `w x h` picture whose longer side stays at least
/// `min_long_side` pixels: the largest a JPEG decoder can apply in the DCT domain.
pub fn reduction_for(w: u32, h: u32, min_long_side: u32) -> u32 {
    let long = w.max(h);
    [8u32, 4, 2]
        .into_iter()
        .find(|&r| long.div_ceil(r) >= min_long_side.max(1))
        .unwrap_or(1)
}

/// Decodes `bytes` like [`decode`], but a JPEG whose longer side exceeds the
/// `min_long_side(width, height)` it needs by a factor of 2, 4 or 8 is decoded at that reduced scale in the DCT domain (the scaled
/// inverse DCT of `jpeg-decoder`: the entropy decoding is the same, the IDCT, upsampling
/// and colour conversion work on a quarter, sixteenth or 64th of the pixels). The result
/// keeps the full size in `source_width x source_height`. Other formats, CMYK and 12-bit
/// JPEGs, and any file the scaled decoder refuses are decoded at full size by [`decode`]
/// (which then names the problem, if any).
pub fn decode_reduced(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_long_side: impl Fn(u32, u32) -> u32,
) -> Result<RgbImage> {
    match decode_jpeg_scaled(bytes, limits, min_long_side) {
        Ok(Some(img)) => Ok(img),
        Ok(None) | Err(_) => decode(bytes, limits),
    }
}

/// The scaled JPEG path of [`decode_reduced`]: `Ok(None)` when it does not apply.
fn decode_jpeg_scaled(
    bytes: &[u8],
    limits: &DecodeLimits,
    min_long_side: impl Fn(u32, u32) -> u32,
) -> Result<Option<RgbImage>> {
    if bytes.is_empty() || bytes.len() > limits.max_bytes || sniff(bytes)? != ImageFormat::Jpeg {
        return Ok(None);
    }
    check_jpeg_complete(bytes)?;
    // The header through the same reader as `decode` (dimensions, limits, EXIF orientation).
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg);
    reader.limits(image_limits(limits));
    let mut probe = reader.into_decoder().map_err(|e| classify(e, "Jpeg"))?;
    let (w, h) = probe.dimensions();
    check_dims(w, h, limits)?;
    let r = reduction_for(w, h, min_long_side(w, h));
    if r == 1 {
        return Ok(None);
    }
    let orientation = probe.orientation().ok();
    drop(probe);

    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX));
    let corrupt = |e: jpeg_decoder::Error| err(ImageErrorKind::Corrupt, format!("Jpeg: {e}"));
    dec.read_info().map_err(corrupt)?;
    let Some(info) = dec.info() else {
        return Ok(None);
    };
    if (u32::from(info.width), u32::from(info.height)) != (w, h) {
        return Ok(None);
    }
    let want = |len: u32| u16::try_from(len.div_ceil(r)).unwrap_or(u16::MAX);
    let (sw, sh) = dec.scale(want(w), want(h)).map_err(corrupt)?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    let pixels = dec.decode().map_err(corrupt)?;
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        // CMYK/YCCK and 12-bit files take the full decoder's conversions.
        jpeg_decoder::PixelFormat::CMYK32 | jpeg_decoder::PixelFormat::L16 => return Ok(None),
    };
    let Some(buf) = image::RgbImage::from_raw(sw, sh, rgb) else {
        return Ok(None);
    };
    let mut img = DynamicImage::ImageRgb8(buf);
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    // The picture's size as a viewer shows it: swapped when the orientation turned it.
    let (source_width, source_height) = if (width > height) == (sw > sh) || sw == sh {
        (w, h)
    } else {
        (h, w)
    };
    Ok(Some(RgbImage {
        width,
        height,
        data: rgb.into_raw(),
        source_width,
        source_height,
    }))
}

fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut il = image::Limits::default();
    il.max_alloc = Some(limits.max_alloc_bytes);
    let max_side = u32::try_from(limits.max_pixels.min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
    il.max_image_width = Some(max_side);
    il.max_image_height = Some(max_side);
    il
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

    let il = image_limits(limits);

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
        source_width: width,
        source_height: height,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keeps_the_needed_long_side() {
        assert_eq!(reduction_for(4000, 3000, 1920), 2);
        assert_eq!(reduction_for(4000, 3000, 640), 4);
        assert_eq!(reduction_for(3000, 4000, 640), 4);
        assert_eq!(reduction_for(8000, 6000, 640), 8);
        assert_eq!(reduction_for(3800, 2000, 1920), 1);
        assert_eq!(reduction_for(1280, 960, 640), 2);
        assert_eq!(reduction_for(1278, 960, 640), 1);
        assert_eq!(reduction_for(500, 400, 640), 1);
        assert_eq!(reduction_for(10, 10, 0), 8);
    }
}
