//! (RIGHTS) Bystanders: on a photo where some faces are not linked to a person, one call
//! pixelates those faces into a new version of the file, after which the file is no longer
//! blocked by unidentified faces. The pixelation is irreversible (large blocks of the average
//! colour over the face's box enlarged by a fifth) and the new version is re-encoded (no EXIF,
//! GPS or XMP survives); older versions stay stored but are not served.
//!
//! The pixelation and "store a new version" code here is shared with the erasure
//! ([`crate::erasure`]), which pixelates an erased person's face and then destroys the older
//! versions.

use std::io::Cursor;

use diesel::prelude::*;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbaImage};
use likeness_control_domain::FaceStatus;
use likeness_control_media::Probe;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::assets::{self, AssetOut, Media, media_error};
use crate::audit;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::roles::Permission;
use crate::schema::{asset_versions, assets as assets_t, faces};

/// How much a face's box is enlarged on each side before pixelation (a tenth of its width and
/// height on each side: the box grows by a fifth).
const GROW_PER_SIDE: f64 = 0.1;
/// Blocks across the longer side of an enlarged box: few enough that no face survives.
const BLOCKS_ACROSS: f64 = 5.0;
/// Smallest block, in pixels.
const MIN_BLOCK: u32 = 8;
/// Largest decoded image accepted (pixels).
const MAX_PIXELS: u64 = 100_000_000;
/// JPEG quality of a pixelated version.
const JPEG_QUALITY: u8 = 90;

/// The answer of [`pixelate_unlinked`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PixelateOut {
    /// The file, now at its new version.
    pub asset: AssetOut,
    /// The new version's number.
    pub version: i32,
    /// The faces pixelated (now `identifiable = false`).
    pub faces_pixelated: Vec<String>,
}

/// A box `[x1, y1, x2, y2]` in pixels of the oriented image.
pub type FaceBox = [f64; 4];

fn bad(m: String) -> ControlError {
    ControlError::BadRequest {
        code: "corrupt_file",
        message: format!("the file cannot be pixelated: {m}"),
    }
}

fn decode_oriented(bytes: &[u8]) -> Result<(DynamicImage, ImageFormat)> {
    let format = image::guess_format(bytes).map_err(|e| bad(format!("not an image: {e}")))?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(bad(format!("unsupported image format {format:?}")));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(bad(format!("image of {w}x{h} pixels is too large")));
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok((img, format))
}

/// Pixelates `boxes` of an image in place: each box is enlarged by a fifth (clamped to the
/// image) and covered by blocks of their average colour, about [`BLOCKS_ACROSS`] blocks across
/// its longer side (at least [`MIN_BLOCK`] pixels each). Irreversible: only one colour per
/// block remains.
pub fn pixelate_boxes(img: &mut RgbaImage, boxes: &[FaceBox]) {
    let (iw, ih) = (img.width(), img.height());
    if iw == 0 || ih == 0 {
        return;
    }
    for b in boxes {
        let (w, h) = ((b[2] - b[0]).abs(), (b[3] - b[1]).abs());
        let (bx1, by1) = (b[0].min(b[2]), b[1].min(b[3]));
        let clamp_x = |v: f64| v.clamp(0.0, f64::from(iw)) as u32;
        let clamp_y = |v: f64| v.clamp(0.0, f64::from(ih)) as u32;
        let x1 = clamp_x((bx1 - w * GROW_PER_SIDE).floor());
        let y1 = clamp_y((by1 - h * GROW_PER_SIDE).floor());
        let x2 = clamp_x((bx1 + w + w * GROW_PER_SIDE).ceil());
        let y2 = clamp_y((by1 + h + h * GROW_PER_SIDE).ceil());
        if x2 <= x1 || y2 <= y1 {
            continue;
        }
        let longer = f64::from((x2 - x1).max(y2 - y1));
        let block = ((longer / BLOCKS_ACROSS).ceil() as u32).max(MIN_BLOCK);
        let mut by = y1;
        while by < y2 {
            let ey = (by + block).min(y2);
            let mut bx = x1;
            while bx < x2 {
                let ex = (bx + block).min(x2);
                let mut sum = [0u64; 4];
                let mut n = 0u64;
                for y in by..ey {
                    for x in bx..ex {
                        let p = img.get_pixel(x, y).0;
                        for (s, v) in sum.iter_mut().zip(p) {
                            *s += u64::from(v);
                        }
                        n += 1;
                    }
                }
                if n > 0 {
                    let avg = sum.map(|s| u8::try_from(s / n).unwrap_or(u8::MAX));
                    for y in by..ey {
                        for x in bx..ex {
                            img.put_pixel(x, y, image::Rgba(avg));
                        }
                    }
                }
                bx = ex;
            }
            by = ey;
        }
    }
}

/// Decodes an image (EXIF orientation applied), pixelates `boxes` ([`pixelate_boxes`]) and
/// encodes it again in its format (JPEG, PNG or lossless WebP): no metadata survives. Blocking.
pub fn pixelate_image(bytes: &[u8], boxes: &[FaceBox]) -> Result<Vec<u8>> {
    let (img, format) = decode_oriented(bytes)?;
    let mut rgba = img.to_rgba8();
    pixelate_boxes(&mut rgba, boxes);
    let enc = |e: image::ImageError| ControlError::Internal(format!("pixelated image: {e}"));
    let mut out = Vec::new();
    match format {
        ImageFormat::Png => DynamicImage::ImageRgba8(rgba)
            .write_with_encoder(PngEncoder::new(&mut out))
            .map_err(enc)?,
        ImageFormat::WebP => DynamicImage::ImageRgba8(rgba)
            .write_with_encoder(WebPEncoder::new_lossless(&mut out))
            .map_err(enc)?,
        _ => DynamicImage::ImageRgba8(rgba)
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
            .map_err(enc)?,
    }
    Ok(out)
}

/// A pixelated copy of a file stored in the blob store, not yet recorded as a version.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// Blob of the file.
    pub blob: String,
    /// Blob of its thumbnail.
    pub thumb: Option<String>,
    /// What the probe found in it (size, sha256, dimensions, perceptual hash).
    pub probe: Probe,
}

/// Reads blob `source` of `tenant`, pixelates `boxes` and stores the result and its thumbnail
/// under fresh blob ids. Blocking: run on the blocking pool.
pub fn store_pixelated(
    media: &Media,
    tenant: &str,
    source: &str,
    boxes: &[FaceBox],
) -> Result<StoredVersion> {
    let original = media.blobs.get(tenant, source).map_err(media_error)?;
    let bytes = pixelate_image(&original, boxes)?;
    let probe = likeness_control_media::probe(&bytes, &media.limits).map_err(media_error)?;
    let blob = media.blobs.put_new(tenant, &bytes).map_err(media_error)?;
    let thumb = match &probe.thumbnail_jpeg {
        Some(t) => match media.blobs.put_new(tenant, t) {
            Ok(id) => Some(id),
            Err(e) => {
                let _ = media.blobs.shred(tenant, &blob);
                return Err(media_error(e));
            }
        },
        None => None,
    };
    Ok(StoredVersion { blob, thumb, probe })
}

/// Destroys a stored copy that was not recorded (the transaction failed).
pub fn discard(media: &Media, tenant: &str, s: &StoredVersion) {
    let _ = media.blobs.shred(tenant, &s.blob);
    if let Some(t) = &s.thumb {
        let _ = media.blobs.shred(tenant, t);
    }
}

/// What [`record_version`] did.
#[derive(Debug, Clone)]
pub struct RecordedVersion {
    /// The new version's number.
    pub version: i32,
    /// The thumbnail the file had before (no longer referenced: the caller destroys it).
    pub old_thumb: Option<String>,
}

/// Records `stored` as the new current version of asset `asset_id`, which must still be at
/// version `based_on` (else `409 asset_changed`). Call inside the caller's transaction.
pub fn record_version(
    c: &mut DbConn,
    tenant: &str,
    asset_id: &str,
    based_on: i32,
    stored: &StoredVersion,
    now: chrono::NaiveDateTime,
) -> Result<RecordedVersion> {
    let old = assets::get_row(c, tenant, asset_id)?;
    if old.current_version != based_on {
        return Err(ControlError::Conflict {
            code: "asset_changed",
            message: format!(
                "asset {asset_id} got a new version ({}) while it was pixelated from version \
                 {based_on}: try again",
                old.current_version
            ),
        });
    }
    let p = &stored.probe;
    let version = old.current_version + 1;
    let size = i64::try_from(p.size_bytes).unwrap_or(i64::MAX);
    diesel::update(
        assets_t::table
            .filter(assets_t::tenant_id.eq(tenant))
            .filter(assets_t::id.eq(asset_id)),
    )
    .set((
        assets_t::mime.eq(p.mime),
        assets_t::size_bytes.eq(size),
        assets_t::sha256.eq(&p.sha256),
        assets_t::phash.eq(p.phash.map(likeness_control_media::phash::to_hex)),
        assets_t::width.eq(p.width.and_then(|w| i32::try_from(w).ok())),
        assets_t::height.eq(p.height.and_then(|h| i32::try_from(h).ok())),
        assets_t::blob_key.eq(&stored.blob),
        assets_t::thumb_blob_key.eq(&stored.thumb),
        assets_t::current_version.eq(version),
        assets_t::updated_at.eq(now),
    ))
    .execute(c)?;
    diesel::insert_into(asset_versions::table)
        .values((
            asset_versions::id.eq(db::new_id()),
            asset_versions::asset_id.eq(asset_id),
            asset_versions::tenant_id.eq(tenant),
            asset_versions::version.eq(version),
            asset_versions::blob_key.eq(&stored.blob),
            asset_versions::sha256.eq(&p.sha256),
            asset_versions::size_bytes.eq(size),
            asset_versions::created_at.eq(now),
        ))
        .execute(c)?;
    Ok(RecordedVersion {
        version,
        old_thumb: old.thumb_blob_key,
    })
}

/// The faces of an asset that [`pixelate_unlinked`] pixelates: identifiable, not linked
/// (status not `confirmed` with a person), not a face of an erased person. Sorted by id.
fn unlinked_faces(c: &mut DbConn, tenant: &str, asset_id: &str) -> Result<Vec<(String, FaceBox)>> {
    type Row = (String, String, Option<String>, f64, f64, f64, f64);
    let rows: Vec<Row> = faces::table
        .filter(faces::tenant_id.eq(tenant))
        .filter(faces::asset_id.eq(asset_id))
        .filter(faces::identifiable.eq(true))
        .order(faces::id.asc())
        .select((
            faces::id,
            faces::status,
            faces::person_id,
            faces::box_x1,
            faces::box_y1,
            faces::box_x2,
            faces::box_y2,
        ))
        .load(c)?;
    Ok(rows
        .into_iter()
        .filter(|(_, status, person, ..)| {
            let linked = status == FaceStatus::Confirmed.as_str() && person.is_some();
            !linked && status != FaceStatus::Erased.as_str()
        })
        .map(|(id, _, _, x1, y1, x2, y2)| (id, [x1, y1, x2, y2]))
        .collect())
}

/// Pixelates the unlinked identifiable faces of an image into a new version
/// (`manage_assets`): those faces become `identifiable = false` (their suggestions dropped), the
/// file's compliance is refreshed in the same transaction (no longer blocked by unidentified
/// faces), audited as `asset.pixelate_unlinked`. `409 nothing_to_pixelate` when no face
/// qualifies, `409 not_an_image` for a video.
pub async fn pixelate_unlinked(ctx: &Ctx, asset_id: String) -> Result<PixelateOut> {
    ctx.require(Permission::ManageAssets)?;
    let media = assets::media(&ctx.deps)?;
    let (t, a) = (ctx.tenant().to_string(), asset_id.clone());
    let (row, targets) = db::run(&ctx.deps.pool, move |c| {
        let row = assets::get_row(c, &t, &a)?;
        let targets = unlinked_faces(c, &t, &a)?;
        Ok((row, targets))
    })
    .await?;
    if row.kind != "image" {
        return Err(ControlError::Conflict {
            code: "not_an_image",
            message: format!(
                "asset {asset_id} is a {}: only images are pixelated",
                row.kind
            ),
        });
    }
    if targets.is_empty() {
        return Err(ControlError::Conflict {
            code: "nothing_to_pixelate",
            message: format!("asset {asset_id} has no identifiable face that is not linked"),
        });
    }
    let boxes: Vec<FaceBox> = targets.iter().map(|(_, b)| *b).collect();
    let (m, t, src) = (
        media.clone(),
        ctx.tenant().to_string(),
        row.blob_key.clone(),
    );
    let stored = crate::blocking(move || store_pixelated(&m, &t, &src, &boxes)).await??;
    let (t, a, who, now) = (
        ctx.tenant().to_string(),
        asset_id.clone(),
        ctx.who(),
        ctx.now,
    );
    let ids: Vec<String> = targets.into_iter().map(|(id, _)| id).collect();
    let (m, s) = (media.clone(), stored.clone());
    let based_on = row.current_version;
    let r = db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let now_targets: Vec<String> = unlinked_faces(c, &t, &a)?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            if now_targets != ids {
                return Err(ControlError::Conflict {
                    code: "faces_changed",
                    message: format!(
                        "the faces of asset {a} changed while it was pixelated: try again"
                    ),
                });
            }
            let rec = record_version(c, &t, &a, based_on, &s, now)?;
            mark_pixelated(c, &t, &ids)?;
            crate::exposure::refresh_assets(c, &t, std::slice::from_ref(&a), now)?;
            audit::record(
                c,
                &who,
                "asset.pixelate_unlinked",
                "asset",
                Some(&a),
                serde_json::json!({"version": rec.version, "faces": ids}),
            )?;
            let asset = assets::get(c, &t, &a)?;
            Ok((
                PixelateOut {
                    asset,
                    version: rec.version,
                    faces_pixelated: ids,
                },
                rec.old_thumb,
            ))
        })
    })
    .await;
    match r {
        Ok((out, old_thumb)) => {
            if let Some(th) = old_thumb {
                let t = ctx.tenant().to_string();
                let m = m.clone();
                crate::blocking(move || {
                    let _ = m.blobs.erase(&t, &th);
                })
                .await?;
            }
            ctx.deps.renditions.forget_asset(ctx.tenant(), &asset_id);
            Ok(out)
        }
        Err(e) => {
            let t = ctx.tenant().to_string();
            crate::blocking(move || discard(&m, &t, &stored)).await?;
            Err(e)
        }
    }
}

/// Marks pixelated faces: no longer identifiable, no suggestion left, not linked (a
/// suggestion's person and candidates dropped; `suggested` becomes `unknown`).
pub fn mark_pixelated(c: &mut DbConn, tenant: &str, face_ids: &[String]) -> Result<usize> {
    diesel::update(
        faces::table
            .filter(faces::tenant_id.eq(tenant))
            .filter(faces::id.eq_any(face_ids))
            .filter(faces::status.eq(FaceStatus::Suggested.as_str())),
    )
    .set((
        faces::status.eq(FaceStatus::Unknown.as_str()),
        faces::person_id.eq(None::<String>),
    ))
    .execute(c)?;
    Ok(diesel::update(
        faces::table
            .filter(faces::tenant_id.eq(tenant))
            .filter(faces::id.eq_any(face_ids)),
    )
    .set((
        faces::identifiable.eq(false),
        faces::candidates_json.eq(None::<String>),
    ))
    .execute(c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixelation_leaves_one_colour_per_block_and_the_rest_untouched() {
        let mut img = RgbaImage::from_fn(200, 100, |x, y| {
            image::Rgba([
                (x % 256) as u8,
                (y * 2 % 256) as u8,
                ((x * y) % 256) as u8,
                255,
            ])
        });
        let before = img.clone();
        pixelate_boxes(&mut img, &[[50.0, 20.0, 100.0, 70.0]]);
        // Outside the enlarged box: unchanged.
        assert_eq!(img.get_pixel(10, 10), before.get_pixel(10, 10));
        assert_eq!(img.get_pixel(150, 90), before.get_pixel(150, 90));
        // Inside: blocks of one colour (block = ceil(60 / 5) = 12 px from (45, 15)).
        let p = *img.get_pixel(45, 15);
        for y in 15..27 {
            for x in 45..57 {
                assert_eq!(*img.get_pixel(x, y), p);
            }
        }
        assert_ne!(img.get_pixel(60, 40), before.get_pixel(60, 40));
    }

    #[test]
    fn a_pixelated_jpeg_has_no_metadata_left() {
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 4, 90]));
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_with_encoder(JpegEncoder::new_with_quality(&mut jpeg, 90))
            .unwrap_or_default();
        // An APP1 Exif segment after SOI, with a GPS-looking payload.
        let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x11];
        with_exif.extend_from_slice(b"Exif\0\0GPS-60.1N");
        with_exif.extend_from_slice(&jpeg[2..]);
        let out = pixelate_image(&with_exif, &[[10.0, 10.0, 30.0, 30.0]]);
        let Ok(out) = out else {
            return assert!(out.is_ok(), "{:?}", out.err());
        };
        assert!(!out.windows(4).any(|w| w == b"Exif"));
        assert!(!out.windows(3).any(|w| w == b"GPS"));
    }
}
