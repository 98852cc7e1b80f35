//! CPU twin of the graph executor: runs a [`Plan`] step by step in `f32`, NCHW, in the slots
//! the plan assigned. It is the reference the device executor is compared with, and it is
//! itself checked against ONNX Runtime on real images (`tests/graph.rs`). Convolutions are
//! parallel over output channels (rayon); 1×1 convolutions walk the pixels in tiles so that
//! the input tile stays in cache across the output channels.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::graph::{Activation, Conv, Plan, Step};

/// A graph output computed by [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The graph's name for it.
    pub name: String,
    /// Its shape.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// The slots of a plan, kept between runs so that repeated runs do not allocate.
#[derive(Debug, Default)]
pub struct Workspace {
    slots: Vec<Vec<f32>>,
}

/// Pixels per tile of a 1×1 convolution (64 input channels × 512 pixels × 4 bytes = 128 KiB).
const TILE: usize = 512;

/// Runs `plan` on `input` (shape `plan.input_dims`, row-major) and returns the graph outputs.
pub fn run(plan: &Plan, input: &[f32], ws: &mut Workspace) -> Result<Vec<Tensor>> {
    let want: usize = plan.input_dims.iter().product();
    if input.len() != want {
        return Err(Error::invalid(
            "graph",
            format!(
                "input has {} values, the plan's shape {:?} needs {want}",
                input.len(),
                plan.input_dims
            ),
        ));
    }
    ws.slots.resize_with(plan.slots.len(), Vec::new);
    for (s, &cap) in ws.slots.iter_mut().zip(&plan.slots) {
        if s.len() < cap {
            s.resize(cap, 0.0);
        }
    }
    ws.slots[plan.input_slot][..want].copy_from_slice(input);
    for step in &plan.steps {
        let o = step.output();
        let mut out = std::mem::take(&mut ws.slots[o]);
        let len = step.output_len();
        let res = execute(step, &plan.params, &ws.slots, &mut out[..len]);
        ws.slots[o] = out;
        res?;
    }
    Ok(plan
        .outputs
        .iter()
        .map(|o| Tensor {
            name: o.name.clone(),
            dims: o.dims.clone(),
            data: ws.slots[o.slot][..o.dims.iter().product::<usize>()].to_vec(),
        })
        .collect())
}

fn slot(slots: &[Vec<f32>], i: usize, len: usize) -> Result<&[f32]> {
    slots
        .get(i)
        .and_then(|s| s.get(..len))
        .ok_or_else(|| Error::invalid("graph", format!("slot {i} is smaller than {len}")))
}

fn execute(step: &Step, params: &[f32], slots: &[Vec<f32>], out: &mut [f32]) -> Result<()> {
    match step {
        Step::Conv(c) => {
            let input = slot(slots, c.input, c.n * c.c_in * c.h_in * c.w_in)?;
            conv(c, params, input, out)
        }
        Step::MaxPool {
            input,
            planes,
            h_in,
            w_in,
            h_out,
            w_out,
            kernel: (kh, kw),
            stride: (sh, sw),
            pad: (pt, pl),
            ..
        } => {
            let src = slot(slots, *input, planes * h_in * w_in)?;
            out.par_chunks_mut(h_out * w_out)
                .zip(src.par_chunks(h_in * w_in))
                .for_each(|(o, p)| {
                    for oy in 0..*h_out {
                        for ox in 0..*w_out {
                            let mut m = f32::NEG_INFINITY;
                            for ky in 0..*kh {
                                let Some(iy) = (oy * sh + ky).checked_sub(*pt) else {
                                    continue;
                                };
                                if iy >= *h_in {
                                    continue;
                                }
                                for kx in 0..*kw {
                                    let Some(ix) = (ox * sw + kx).checked_sub(*pl) else {
                                        continue;
                                    };
                                    if ix < *w_in {
                                        m = m.max(p[iy * w_in + ix]);
                                    }
                                }
                            }
                            o[oy * w_out + ox] = m;
                        }
                    }
                });
            Ok(())
        }
        Step::ResizeNearest {
            input,
            planes,
            h_in,
            w_in,
            h_out,
            w_out,
            scale: (sy, sx),
            ..
        } => {
            let src = slot(slots, *input, planes * h_in * w_in)?;
            let xs: Vec<usize> = (0..*w_out).map(|x| nearest_floor(x, *sx, *w_in)).collect();
            out.par_chunks_mut(h_out * w_out)
                .zip(src.par_chunks(h_in * w_in))
                .for_each(|(o, p)| {
                    for (oy, row) in o.chunks_exact_mut(*w_out).enumerate() {
                        let iy = nearest_floor(oy, *sy, *h_in);
                        let irow = &p[iy * w_in..(iy + 1) * w_in];
                        for (v, &ix) in row.iter_mut().zip(&xs) {
                            *v = irow[ix];
                        }
                    }
                });
            Ok(())
        }
        Step::Add {
            a,
            b,
            len,
            activation,
            ..
        } => {
            let (a, b) = (slot(slots, *a, *len)?, slot(slots, *b, *len)?);
            let act = *activation;
            out.par_chunks_mut(1 << 14)
                .zip(a.par_chunks(1 << 14).zip(b.par_chunks(1 << 14)))
                .for_each(|(o, (a, b))| {
                    for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                        *o = act.apply(a + b);
                    }
                });
            Ok(())
        }
        Step::Activate {
            input,
            len,
            activation,
            ..
        } => {
            let src = slot(slots, *input, *len)?;
            let act = *activation;
            for (o, x) in out.iter_mut().zip(src) {
                *o = act.apply(*x);
            }
            Ok(())
        }
        Step::Sigmoid { input, len, .. } => {
            let src = slot(slots, *input, *len)?;
            for (o, x) in out.iter_mut().zip(src) {
                *o = 1.0 / (1.0 + (-x).exp());
            }
            Ok(())
        }
        Step::Transpose {
            input, dims, perm, ..
        } => {
            let src = slot(slots, *input, dims.iter().product())?;
            transpose(src, dims, perm, out);
            Ok(())
        }
    }
}

/// `floor(dst / scale)`, clamped to the input (ONNX Resize: nearest, asymmetric, floor).
#[inline]
pub fn nearest_floor(dst: usize, scale: f32, len_in: usize) -> usize {
    let x = (dst as f32 / scale).floor();
    (x.max(0.0) as usize).min(len_in.saturating_sub(1))
}

fn transpose(src: &[f32], dims: &[usize], perm: &[usize], out: &mut [f32]) {
    let rank = dims.len();
    let mut in_strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        in_strides[a] = in_strides[a + 1] * dims[a + 1];
    }
    let out_dims: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
    let strides: Vec<usize> = perm.iter().map(|&a| in_strides[a]).collect();
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    for o in out.iter_mut() {
        *o = src[off];
        // Odometer over the output axes, last fastest.
        for a in (0..rank).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < out_dims[a] {
                break;
            }
            off -= strides[a] * out_dims[a];
            idx[a] = 0;
        }
    }
}

fn conv(c: &Conv, params: &[f32], input: &[f32], out: &mut [f32]) -> Result<()> {
    let (kh, kw) = c.kernel;
    let cin_g = c.c_in / c.group;
    let wlen = c.c_out * cin_g * kh * kw;
    let (Some(w), Some(b)) = (
        params.get(c.weight..c.weight + wlen),
        params.get(c.bias..c.bias + c.c_out),
    ) else {
        return Err(Error::invalid(
            "graph",
            "convolution parameters out of range",
        ));
    };
    if c.group == 1 && c.kernel == (1, 1) && c.stride == (1, 1) && c.pad == (0, 0) {
        pointwise(c, w, b, input, out);
    } else {
        direct(c, w, b, input, out);
    }
    Ok(())
}

/// 1×1 convolution: per block of output channels, per pixel tile, `acc += w · in[ci]`.
fn pointwise(c: &Conv, w: &[f32], b: &[f32], input: &[f32], out: &mut [f32]) {
    let plane = c.h_out * c.w_out;
    let block = if c.c_out.is_multiple_of(4) { 4 } else { 1 };
    let per_image = c.c_out / block;
    out.par_chunks_mut(block * plane)
        .enumerate()
        .for_each(|(idx, o)| {
            let img = idx / per_image;
            let co0 = (idx % per_image) * block;
            let inp = &input[img * c.c_in * plane..(img + 1) * c.c_in * plane];
            let mut t = 0;
            while t < plane {
                let len = TILE.min(plane - t);
                for k in 0..block {
                    let co = co0 + k;
                    let acc = &mut o[k * plane + t..k * plane + t + len];
                    acc.fill(b[co]);
                    let wrow = &w[co * c.c_in..(co + 1) * c.c_in];
                    for (ci, &wv) in wrow.iter().enumerate() {
                        let src = &inp[ci * plane + t..ci * plane + t + len];
                        for (a, s) in acc.iter_mut().zip(src) {
                            *a += wv * s;
                        }
                    }
                    if c.activation != Activation::Identity {
                        for a in acc.iter_mut() {
                            *a = c.activation.apply(*a);
                        }
                    }
                }
                t += len;
            }
        });
}

/// Any other convolution (3×3, 7×7, strided, depthwise): per output plane, row by row,
/// `row += w[ci, ky, kx] · input row` over the valid output columns.
fn direct(c: &Conv, w: &[f32], b: &[f32], input: &[f32], out: &mut [f32]) {
    let (kh, kw) = c.kernel;
    let (sh, sw) = c.stride;
    let (pt, pl) = c.pad;
    let cin_g = c.c_in / c.group;
    let cout_g = c.c_out / c.group;
    let plane_in = c.h_in * c.w_in;
    // Valid output columns per kx: ix = ox * sw + kx - pl in [0, w_in).
    let cols: Vec<(usize, usize)> = (0..kw)
        .map(|kx| {
            let lo = pl.saturating_sub(kx).div_ceil(sw);
            let hi = if c.w_in + pl > kx {
                ((c.w_in - 1 + pl - kx) / sw + 1).min(c.w_out)
            } else {
                0
            };
            (lo, hi.max(lo))
        })
        .collect();
    out.par_chunks_mut(c.h_out * c.w_out)
        .enumerate()
        .for_each(|(idx, o)| {
            let (img, co) = (idx / c.c_out, idx % c.c_out);
            let g = co / cout_g;
            let wk = &w[co * cin_g * kh * kw..(co + 1) * cin_g * kh * kw];
            for (oy, row) in o.chunks_exact_mut(c.w_out).enumerate() {
                row.fill(b[co]);
                for ci in 0..cin_g {
                    let base = (img * c.c_in + g * cin_g + ci) * plane_in;
                    let inp = &input[base..base + plane_in];
                    for ky in 0..kh {
                        let Some(iy) = (oy * sh + ky).checked_sub(pt) else {
                            continue;
                        };
                        if iy >= c.h_in {
                            continue;
                        }
                        let irow = &inp[iy * c.w_in..(iy + 1) * c.w_in];
                        for (kx, &(lo, hi)) in cols.iter().enumerate() {
                            let wv = wk[(ci * kh + ky) * kw + kx];
                            if sw == 1 {
                                // ix = ox + kx - pl, contiguous.
                                let start = lo + kx - pl;
                                let src = &irow[start..start + (hi - lo)];
                                for (r, s) in row[lo..hi].iter_mut().zip(src) {
                                    *r += wv * s;
                                }
                            } else {
                                for (ox, r) in row.iter_mut().enumerate().take(hi).skip(lo) {
                                    *r += wv * irow[ox * sw + kx - pl];
                                }
                            }
                        }
                    }
                }
                if c.activation != Activation::Identity {
                    for r in row.iter_mut() {
                        *r = c.activation.apply(*r);
                    }
                }
            }
        });
}
