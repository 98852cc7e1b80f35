//! The kernels on a CUDA device: one context and stream, every source compiled with NVRTC
//! (cached) and loaded, cuBLAS for the gallery GEMM. Each method uploads its inputs, runs
//! the kernels and downloads the result, so that tests can compare it with the CPU twin; the
//! pipeline's device path (buffers kept on the device from the upload of the decoded pixels
//! to the gallery search) is built from the same launches.
//!
//! [`Gpu::new`] probes first (see [`crate::probe`]): without libcuda, a device or libcublas it
//! returns an error and never reaches a cudarc call that could panic.
// Kernel launches and cuBLAS calls are `unsafe` in cudarc (the argument list is not checked
// against the kernel's signature): every launch below passes exactly the arguments its
// `.cu` declares, in order, and the buffers are sized for the grid it launches.
#![allow(unsafe_code)]

use std::sync::Arc;

use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::error::{Error, Result};
use crate::nvrtc::Compiler;
use crate::probe::{self, Device};
use crate::sources::{self, KernelSource};
use crate::twin::detect::{Face, ViewGeometry, ViewOutputs};
use crate::twin::letterbox::{ImageRef, LetterboxView, Normalise, ResamplePlan};
use crate::twin::search::{Hit, MAX_K};
use crate::twin::warp::{CROP, WarpJob};

const THREADS: u32 = 256;
const DESC_INTS: usize = 16;
const GEOM_FLOATS: usize = 11;
const CAND_FLOATS: usize = 15;
const TOPK_THREADS: u32 = 128;
const NMS_THREADS: u32 = 256;
const NMS_MAX_KEEP: usize = 512;

fn drv(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::driver(op, format!("{e:?}"))
}

/// A device with every kernel loaded.
pub struct Gpu {
    device: Device,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: Vec<(&'static str, CudaFunction)>,
    _modules: Vec<Arc<CudaModule>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("device", &self.device).finish()
    }
}

impl Gpu {
    /// Opens device `ordinal`, compiles (or reads from the cache) and loads every kernel.
    pub fn new(ordinal: usize, compiler: &Compiler) -> Result<Self> {
        let probe = probe::probe_cuda();
        if let Some(why) = &probe.unavailable {
            return Err(Error::LibraryUnavailable(why.clone()));
        }
        let device = probe
            .devices
            .iter()
            .find(|d| d.ordinal as usize == ordinal)
            .cloned()
            .ok_or_else(|| Error::LibraryUnavailable(format!("no usable CUDA device {ordinal}")))?;
        if !probe::library_loads("cublas") {
            return Err(Error::LibraryUnavailable(
                "libcublas not found (set LD_LIBRARY_PATH to the CUDA libraries)".into(),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(drv("context"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| Error::driver("cuBLAS init", format!("{e:?}")))?;
        let mut functions = Vec::new();
        let mut modules = Vec::new();
        for src in sources::ALL {
            let m = Self::load(&ctx, compiler, &src, device.compute_capability)?;
            for f in src.functions {
                functions.push((*f, m.load_function(f).map_err(drv("load function"))?));
            }
            modules.push(m);
        }
        Ok(Self {
            device,
            ctx,
            stream,
            blas,
            functions,
            _modules: modules,
        })
    }

    fn load(
        ctx: &Arc<CudaContext>,
        compiler: &Compiler,
        src: &KernelSource,
        cc: (i32, i32),
    ) -> Result<Arc<CudaModule>> {
        let compiled = compiler.compile(src, cc)?;
        ctx.load_module(Ptx::from_src(compiled.ptx))
            .map_err(drv("load module"))
    }

    /// Theoretical FP32 and memory-bandwidth peaks of the device, from its attributes.
    pub fn peaks(&self) -> Result<Peaks> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let attr = |a| self.ctx.attribute(a).map_err(drv("device attribute"));
        let sms = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let clock_khz = attr(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)?;
        let mem_khz = attr(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)?;
        let bus_bits = attr(A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)?;
        let lanes = fp32_lanes_per_sm(self.device.compute_capability);
        Ok(Peaks {
            sms: sms as u32,
            fp32_tflops: f64::from(sms) * f64::from(lanes) * 2.0 * f64::from(clock_khz) * 1e3
                / 1e12,
            bandwidth_gb_s: 2.0 * f64::from(mem_khz) * 1e3 * f64::from(bus_bits) / 8.0 / 1e9,
        })
    }

    /// cuBLAS on the device's stream.
    pub(crate) fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// The stream every launch of this device goes to.
    pub(crate) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device in use.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.bind_to_thread().map_err(drv("bind context"))?;
        cudarc::driver::result::mem_get_info().map_err(drv("memory info"))
    }

    pub(crate) fn function(&self, name: &str) -> Result<&CudaFunction> {
        self.functions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f)
            .ok_or_else(|| Error::driver("load function", format!("{name} not loaded")))
    }

    fn grid(n: usize, y: usize, threads: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: ((n as u32).div_ceil(threads).max(1), y.max(1) as u32, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The batched letterbox on the device (see [`crate::twin::letterbox::letterbox_batch`]).
    pub fn letterbox(
        &self,
        images: &[ImageRef<'_>],
        views: &[LetterboxView],
        norm: Normalise,
    ) -> Result<Vec<f32>> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        let src = self.upload_images(images)?;
        let out_len: usize = views
            .iter()
            .map(|v| 3 * (v.input.0 * v.input.1) as usize)
            .sum();
        let mut d_out = self
            .stream
            .alloc_zeros::<f32>(out_len.max(1))
            .map_err(drv("alloc"))?;
        self.letterbox_device(&src, views, norm, &mut d_out.slice_mut(..))?;
        let mut out = self.stream.clone_dtoh(&d_out).map_err(drv("download"))?;
        out.truncate(out_len);
        Ok(out)
    }

    /// Uploads the pixels of a batch of images into one device buffer (kept for the warp).
    pub fn upload_images(&self, images: &[ImageRef<'_>]) -> Result<DeviceImages> {
        let mut src = Vec::new();
        let mut offsets = Vec::with_capacity(images.len());
        for img in images {
            offsets.push(src.len() as u64);
            src.extend_from_slice(img.data);
        }
        if src.is_empty() {
            src.push(0);
        }
        Ok(DeviceImages {
            data: self.stream.clone_htod(&src).map_err(drv("upload"))?,
            offsets,
            sizes: images.iter().map(|i| (i.width, i.height)).collect(),
        })
    }

    /// The batched letterbox from images already on the device into `out` (the views one
    /// after the other, each `3 * input.0 * input.1` values, NCHW).
    pub fn letterbox_device(
        &self,
        images: &DeviceImages,
        views: &[LetterboxView],
        norm: Normalise,
        out: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let (mut desc, mut offs) = (Vec::new(), Vec::new());
        let (mut starts, mut sizes, mut values) = (Vec::new(), Vec::new(), Vec::new());
        let (mut temp_len, mut out_len) = (0u64, 0u64);
        let (mut max_temp, mut max_out) = (0usize, 0usize);
        for v in views {
            let &(iw, ih) = images
                .sizes
                .get(v.image)
                .ok_or_else(|| Error::invalid("letterbox", format!("view of image {}", v.image)))?;
            let p = ResamplePlan::new(iw, ih, v.crop, v.content.0, v.content.1, v.filter)?;
            let mut axis = |w: &crate::twin::letterbox::AxisWeights| -> [i32; 4] {
                let r = [
                    w.precision as i32,
                    w.window as i32,
                    starts.len() as i32,
                    values.len() as i32,
                ];
                starts.extend(w.starts.iter().map(|&s| s as i32));
                sizes.extend(w.sizes.iter().map(|&s| s as i32));
                values.extend_from_slice(&w.values);
                r
            };
            let va = axis(&p.vert);
            let ha = axis(&p.horiz);
            desc.extend_from_slice(&[
                iw as i32,
                ih as i32,
                v.content.0 as i32,
                v.content.1 as i32,
                v.input.0 as i32,
                v.input.1 as i32,
                p.x_first as i32,
                p.temp_width as i32,
            ]);
            desc.extend_from_slice(&va);
            desc.extend_from_slice(&ha);
            offs.extend_from_slice(&[images.offsets[v.image], temp_len, out_len]);
            let t = p.temp_width as usize * v.content.1 as usize;
            let o = (v.input.0 * v.input.1) as usize;
            temp_len += 3 * t as u64;
            out_len += 3 * o as u64;
            max_temp = max_temp.max(t);
            max_out = max_out.max(o);
        }
        debug_assert_eq!(desc.len(), views.len() * DESC_INTS);
        if views.is_empty() {
            return Ok(());
        }
        if out.len() < out_len as usize {
            return Err(Error::invalid(
                "letterbox",
                format!(
                    "output holds {} values, the views need {out_len}",
                    out.len()
                ),
            ));
        }
        let s = &self.stream;
        let d_desc = s.clone_htod(&desc).map_err(drv("upload"))?;
        let d_offs = s.clone_htod(&offs).map_err(drv("upload"))?;
        let d_starts = s.clone_htod(&starts).map_err(drv("upload"))?;
        let d_sizes = s.clone_htod(&sizes).map_err(drv("upload"))?;
        let d_values = s.clone_htod(&values).map_err(drv("upload"))?;
        let mut d_temp = s
            .alloc_zeros::<u8>(temp_len.max(1) as usize)
            .map_err(drv("alloc"))?;
        let f = self.function("letterbox_vert")?;
        let mut b = s.launch_builder(f);
        b.arg(&images.data)
            .arg(&d_desc)
            .arg(&d_offs)
            .arg(&d_starts)
            .arg(&d_sizes)
            .arg(&d_values)
            .arg(&mut d_temp);
        // SAFETY: arguments as letterbox_vert declares them; the grid covers every view's
        // temporary image, whose offsets lie inside d_temp.
        unsafe { b.launch(Self::grid(max_temp, views.len(), THREADS)) }
            .map_err(drv("letterbox_vert"))?;
        let bgr = i32::from(norm.bgr);
        let f = self.function("letterbox_horiz")?;
        let mut b = s.launch_builder(f);
        b.arg(&d_temp)
            .arg(&d_desc)
            .arg(&d_offs)
            .arg(&d_starts)
            .arg(&d_sizes)
            .arg(&d_values)
            .arg(&bgr)
            .arg(&norm.mean)
            .arg(&norm.std)
            .arg(out);
        // SAFETY: as above for letterbox_horiz; `out` holds at least out_len values.
        unsafe { b.launch(Self::grid(max_out, views.len(), THREADS)) }
            .map_err(drv("letterbox_horiz"))?;
        Ok(())
    }

    /// Warp of every face of the batch (see [`crate::twin::warp::warp_batch`]): interleaved
    /// crops and the embedder input.
    pub fn warp(&self, images: &[ImageRef<'_>], jobs: &[WarpJob]) -> Result<(Vec<u8>, Vec<f32>)> {
        if jobs.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let src = self.upload_images(images)?;
        let s = &self.stream;
        let n = jobs.len() * CROP * CROP * 3;
        let mut d_rgb = s.alloc_zeros::<u8>(n).map_err(drv("alloc"))?;
        let mut d_in = s.alloc_zeros::<f32>(n).map_err(drv("alloc"))?;
        self.warp_device(
            &src,
            jobs,
            &mut d_rgb.slice_mut(..),
            &mut d_in.slice_mut(..),
        )?;
        Ok((
            s.clone_dtoh(&d_rgb).map_err(drv("download"))?,
            s.clone_dtoh(&d_in).map_err(drv("download"))?,
        ))
    }

    /// The warp from images already on the device: `rgb` gets the interleaved crops, `input`
    /// the embedder input of every face (both at least `faces * 112 * 112 * 3` long).
    pub fn warp_device(
        &self,
        images: &DeviceImages,
        jobs: &[WarpJob],
        rgb: &mut CudaViewMut<'_, u8>,
        input: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let n = jobs.len() * CROP * CROP * 3;
        if rgb.len() < n || input.len() < n {
            return Err(Error::invalid(
                "warp",
                format!(
                    "buffers of {} / {} for {} faces",
                    rgb.len(),
                    input.len(),
                    jobs.len()
                ),
            ));
        }
        let (mut off, mut dims, mut aff) = (Vec::new(), Vec::new(), Vec::new());
        for j in jobs {
            let &(w, h) = images
                .sizes
                .get(j.image)
                .ok_or_else(|| Error::invalid("warp", format!("face of image {}", j.image)))?;
            off.push(images.offsets[j.image]);
            dims.extend_from_slice(&[w as i32, h as i32]);
            aff.extend_from_slice(&[j.inverse.a, j.inverse.b, j.inverse.tx, j.inverse.ty]);
        }
        let s = &self.stream;
        let d_off = s.clone_htod(&off).map_err(drv("upload"))?;
        let d_dims = s.clone_htod(&dims).map_err(drv("upload"))?;
        let d_aff = s.clone_htod(&aff).map_err(drv("upload"))?;
        let f = self.function("warp_faces")?;
        let mut b = s.launch_builder(f);
        b.arg(&images.data)
            .arg(&d_off)
            .arg(&d_dims)
            .arg(&d_aff)
            .arg(rgb)
            .arg(input);
        // SAFETY: arguments as warp_faces declares them; one grid row per face, buffers
        // checked above.
        unsafe { b.launch(Self::grid(CROP * CROP, jobs.len(), THREADS)) }
            .map_err(drv("warp_faces"))?;
        Ok(())
    }

    /// L2 normalisation in place of `rows` rows of `dim` on the device.
    pub fn l2_normalize_device(
        &self,
        data: &mut CudaViewMut<'_, f32>,
        rows: usize,
        dim: usize,
    ) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        if data.len() < rows * dim {
            return Err(Error::invalid(
                "l2_normalize",
                "buffer shorter than the rows",
            ));
        }
        let s = &self.stream;
        let mut d_norms = s.alloc_zeros::<f32>(rows).map_err(drv("alloc"))?;
        let (n_i, dim_i) = (rows as i32, dim as i32);
        let f = self.function("l2_normalize_rows")?;
        let mut b = s.launch_builder(f);
        b.arg(data).arg(&n_i).arg(&dim_i).arg(&mut d_norms);
        // SAFETY: arguments as l2_normalize_rows declares them; one thread per row.
        unsafe { b.launch(Self::grid(rows, 1, THREADS)) }.map_err(drv("l2_normalize_rows"))?;
        Ok(())
    }

    /// L2 normalisation of `dim`-wide rows: the normalised rows and the original norms.
    pub fn l2_normalize(&self, rows: &[f32], dim: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        if dim == 0 || !rows.len().is_multiple_of(dim) || rows.is_empty() {
            return Err(Error::invalid(
                "l2_normalize",
                format!("{} values are not rows of {dim}", rows.len()),
            ));
        }
        let n = rows.len() / dim;
        let s = &self.stream;
        let mut d_rows = s.clone_htod(rows).map_err(drv("upload"))?;
        let mut d_norms = s.alloc_zeros::<f32>(n).map_err(drv("alloc"))?;
        let (n_i, dim_i) = (n as i32, dim as i32);
        let f = self.function("l2_normalize_rows")?;
        let mut b = s.launch_builder(f);
        b.arg(&mut d_rows).arg(&n_i).arg(&dim_i).arg(&mut d_norms);
        // SAFETY: arguments as l2_normalize_rows declares them; one thread per row.
        unsafe { b.launch(Self::grid(n, 1, THREADS)) }.map_err(drv("l2_normalize_rows"))?;
        Ok((
            s.clone_dtoh(&d_rows).map_err(drv("download"))?,
            s.clone_dtoh(&d_norms).map_err(drv("download"))?,
        ))
    }

    /// Top-k of every `cols`-wide row of a score matrix (see
    /// [`crate::twin::search::topk_rows`]).
    pub fn topk(&self, scores: &[f32], cols: usize, k: usize) -> Result<Vec<Vec<Hit>>> {
        if k == 0 || k > MAX_K || cols == 0 || !scores.len().is_multiple_of(cols) {
            return Err(Error::invalid(
                "topk",
                format!("k {k}, {} scores in rows of {cols}", scores.len()),
            ));
        }
        let d_scores = self.stream.clone_htod(scores).map_err(drv("upload"))?;
        self.topk_device(&d_scores, scores.len() / cols, cols, k)
    }

    fn topk_device(
        &self,
        d_scores: &cudarc::driver::CudaSlice<f32>,
        rows: usize,
        cols: usize,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        let s = &self.stream;
        let mut d_idx = s.alloc_zeros::<i32>(rows * k).map_err(drv("alloc"))?;
        let mut d_sc = s.alloc_zeros::<f32>(rows * k).map_err(drv("alloc"))?;
        let (cols_i, k_i) = (cols as i32, k as i32);
        let f = self.function("topk_rows")?;
        let mut b = s.launch_builder(f);
        b.arg(d_scores)
            .arg(&cols_i)
            .arg(&k_i)
            .arg(&mut d_idx)
            .arg(&mut d_sc);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (TOPK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: arguments as topk_rows declares them; one block per row, k <= MAX_K.
        unsafe { b.launch(cfg) }.map_err(drv("topk_rows"))?;
        let idx = s.clone_dtoh(&d_idx).map_err(drv("download"))?;
        let sc = s.clone_dtoh(&d_sc).map_err(drv("download"))?;
        Ok(idx
            .chunks_exact(k)
            .zip(sc.chunks_exact(k))
            .map(|(i, s)| {
                i.iter()
                    .zip(s)
                    .filter(|(i, _)| **i >= 0)
                    .map(|(&i, &s)| Hit {
                        index: i as u32,
                        score: s,
                    })
                    .collect()
            })
            .collect())
    }

    /// A gallery matrix (`n x dim`, row-major) uploaded once and kept on the device.
    pub fn upload_gallery(&self, gallery: &[f32], dim: usize) -> Result<GpuGallery> {
        if dim == 0 || !gallery.len().is_multiple_of(dim) {
            return Err(Error::invalid(
                "search",
                format!("{} values are not rows of {dim}", gallery.len()),
            ));
        }
        Ok(GpuGallery {
            data: self.stream.clone_htod(gallery).map_err(drv("upload"))?,
            rows: gallery.len() / dim,
            dim,
        })
    }

    /// Exact search: scores by cuBLAS SGEMM (queries x gallery^T), then top-k per query.
    pub fn search(&self, queries: &[f32], gallery: &GpuGallery, k: usize) -> Result<Vec<Vec<Hit>>> {
        let dim = gallery.dim;
        if !queries.len().is_multiple_of(dim) || k == 0 || k > MAX_K {
            return Err(Error::invalid(
                "search",
                format!("{} query values in rows of {dim}, k {k}", queries.len()),
            ));
        }
        let m = queries.len() / dim;
        if m == 0 || gallery.rows == 0 {
            return Ok(vec![Vec::new(); m]);
        }
        let s = &self.stream;
        let d_q = s.clone_htod(queries).map_err(drv("upload"))?;
        let mut d_s = s
            .alloc_zeros::<f32>(m * gallery.rows)
            .map_err(drv("alloc"))?;
        // Column-major view: S^T (rows x m) = G (rows x dim, from the row-major dim x rows
        // buffer transposed) * Q^T (dim x m).
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: gallery.rows as i32,
            n: m as i32,
            k: dim as i32,
            alpha: 1.0f32,
            lda: dim as i32,
            ldb: dim as i32,
            beta: 0.0f32,
            ldc: gallery.rows as i32,
        };
        // SAFETY: A is rows x dim (lda dim), B dim x m (ldb dim), C rows x m (ldc rows): the
        // three buffers have exactly these sizes.
        unsafe { self.blas.gemm(cfg, &gallery.data, &d_q, &mut d_s) }
            .map_err(|e| Error::driver("cuBLAS sgemm", format!("{e:?}")))?;
        self.topk_device(&d_s, m, gallery.rows, k)
    }

    /// YuNet decoding + NMS of one detector call (all views the same input size) on the
    /// device; per image the faces, best first (see [`crate::twin::detect::detect_batch`]).
    /// Returns `None` for an image with more candidates than the device NMS holds: the
    /// caller runs the twin for it.
    pub fn detect(
        &self,
        views: &[ViewOutputs<'_>],
        n_images: usize,
        threshold: f32,
        iou_threshold: f32,
        max_faces: usize,
    ) -> Result<Vec<Option<Vec<Face>>>> {
        let Some(first) = views.first() else {
            return Ok(vec![Some(Vec::new()); n_images]);
        };
        let input_w = first.input_w;
        let cells0 = first.levels[0].cls.len();
        let input_h = (cells0 as u32 / (input_w / 8).max(1)) * 8;
        if views
            .iter()
            .any(|v| v.input_w != input_w || v.levels[0].cls.len() != cells0)
        {
            return Err(Error::invalid(
                "yunet_decode",
                "views of one call must share the input size",
            ));
        }
        let s = &self.stream;
        let mut concat: Vec<Vec<f32>> = vec![Vec::new(); 12];
        for v in views {
            for (li, l) in v.levels.iter().enumerate() {
                concat[li].extend_from_slice(l.cls);
                concat[3 + li].extend_from_slice(l.obj);
                concat[6 + li].extend_from_slice(l.bbox);
                concat[9 + li].extend_from_slice(l.kps);
            }
        }
        let outs = concat
            .iter()
            .map(|c| s.clone_htod(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(drv("upload"))?;
        let outs: Vec<CudaView<'_, f32>> = outs.iter().map(|o| o.slice(..)).collect();
        let geometry: Vec<(usize, ViewGeometry)> =
            views.iter().map(|v| (v.image, v.geometry)).collect();
        self.detect_device(
            &outs,
            &geometry,
            (input_w, input_h),
            n_images,
            threshold,
            iou_threshold,
            max_faces,
        )
    }

    /// YuNet decoding + NMS of detector outputs already on the device: `outs` are the 12
    /// outputs (cls, obj, bbox, kps at strides 8, 16, 32) of a call on `views.len()` views of
    /// `input` size (width, height); `views` gives each view's image and geometry.
    #[allow(clippy::too_many_arguments)]
    pub fn detect_device(
        &self,
        outs: &[CudaView<'_, f32>],
        views: &[(usize, ViewGeometry)],
        input: (u32, u32),
        n_images: usize,
        threshold: f32,
        iou_threshold: f32,
        max_faces: usize,
    ) -> Result<Vec<Option<Vec<Face>>>> {
        if views.is_empty() {
            return Ok(vec![Some(Vec::new()); n_images]);
        }
        let (input_w, input_h) = input;
        let per_view: usize = crate::twin::detect::STRIDES
            .iter()
            .map(|&st| ((input_w / st) * (input_h / st)) as usize)
            .sum();
        let cells = |li: usize| {
            let st = crate::twin::detect::STRIDES[li];
            ((input_w / st) * (input_h / st)) as usize * views.len()
        };
        let widths = [1usize, 1, 4, 10];
        if outs.len() != 12
            || (0..12).any(|k| outs[k].len() < cells(k % 3) * widths[k / 3])
            || views.iter().any(|(img, _)| *img >= n_images)
        {
            return Err(Error::invalid(
                "yunet_decode",
                "12 outputs covering every view, views naming images of the batch",
            ));
        }
        let s = &self.stream;
        let (mut geom, mut view_img, mut view_key) = (Vec::new(), Vec::new(), Vec::new());
        for (vi, (img, g)) in views.iter().enumerate() {
            let flag = |b: bool| if b { 1.0f32 } else { 0.0 };
            geom.extend_from_slice(&[
                g.x0,
                g.y0,
                g.scale,
                g.content_w as f32,
                g.content_h as f32,
                flag(g.interior[0]),
                flag(g.interior[1]),
                flag(g.interior[2]),
                flag(g.interior[3]),
                g.img_w as f32,
                g.img_h as f32,
            ]);
            view_img.push(*img as i32);
            view_key.push(vi as i32);
        }
        debug_assert_eq!(geom.len(), views.len() * GEOM_FLOATS);
        let d_geom = s.clone_htod(&geom).map_err(drv("upload"))?;
        let d_vimg = s.clone_htod(&view_img).map_err(drv("upload"))?;
        let d_vkey = s.clone_htod(&view_key).map_err(drv("upload"))?;
        let capacity = (per_view * views.len()).min(1 << 20);
        let mut d_cf = s
            .alloc_zeros::<f32>(capacity * CAND_FLOATS)
            .map_err(drv("alloc"))?;
        let mut d_ck = s.alloc_zeros::<u32>(capacity).map_err(drv("alloc"))?;
        let mut d_ci = s.alloc_zeros::<i32>(capacity).map_err(drv("alloc"))?;
        let mut d_count = s.alloc_zeros::<u32>(1).map_err(drv("alloc"))?;
        let (nv, iw, ih, cap) = (
            views.len() as i32,
            input_w as i32,
            input_h as i32,
            capacity as i32,
        );
        let f = self.function("yunet_decode")?;
        let mut b = s.launch_builder(f);
        for o in outs {
            b.arg(o);
        }
        b.arg(&nv)
            .arg(&iw)
            .arg(&ih)
            .arg(&threshold)
            .arg(&d_geom)
            .arg(&d_vimg)
            .arg(&d_vkey)
            .arg(&mut d_cf)
            .arg(&mut d_ck)
            .arg(&mut d_ci)
            .arg(&mut d_count)
            .arg(&cap);
        // SAFETY: arguments as yunet_decode declares them (12 outputs, then the scalars and
        // buffers); one thread per cell of every view; at most `capacity` candidates written.
        unsafe { b.launch(Self::grid(per_view * views.len(), 1, THREADS)) }
            .map_err(drv("yunet_decode"))?;
        let count = s.clone_dtoh(&d_count).map_err(drv("download"))?[0] as usize;
        if count > capacity {
            return Err(Error::driver(
                "yunet_decode",
                format!("{count} candidates exceed the buffer of {capacity}"),
            ));
        }
        let keep = max_faces.clamp(1, NMS_MAX_KEEP);
        let mut d_of = s
            .alloc_zeros::<f32>(n_images * keep * CAND_FLOATS)
            .map_err(drv("alloc"))?;
        let mut d_on = s.alloc_zeros::<i32>(n_images).map_err(drv("alloc"))?;
        let (nc, keep_i) = (count as i32, keep as i32);
        let f = self.function("nms_per_image")?;
        let mut b = s.launch_builder(f);
        b.arg(&d_cf)
            .arg(&d_ck)
            .arg(&d_ci)
            .arg(&nc)
            .arg(&iou_threshold)
            .arg(&keep_i)
            .arg(&mut d_of)
            .arg(&mut d_on);
        let cfg = LaunchConfig {
            grid_dim: (n_images.max(1) as u32, 1, 1),
            block_dim: (NMS_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: arguments as nms_per_image declares them; one block per image.
        unsafe { b.launch(cfg) }.map_err(drv("nms_per_image"))?;
        let of = s.clone_dtoh(&d_of).map_err(drv("download"))?;
        let on = s.clone_dtoh(&d_on).map_err(drv("download"))?;
        Ok(on
            .iter()
            .enumerate()
            .map(|(img, &n)| {
                (n >= 0).then(|| {
                    (0..n as usize)
                        .map(|q| {
                            let f = &of[(img * keep + q) * CAND_FLOATS..][..CAND_FLOATS];
                            let mut landmarks = [[0f32; 2]; 5];
                            for (i, lm) in landmarks.iter_mut().enumerate() {
                                *lm = [f[4 + 2 * i], f[5 + 2 * i]];
                            }
                            Face {
                                bbox: [f[0], f[1], f[2], f[3]],
                                landmarks,
                                score: f[14],
                            }
                        })
                        .collect()
                })
            })
            .collect())
    }
}

/// Theoretical peaks of a device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peaks {
    /// Streaming multiprocessors.
    pub sms: u32,
    /// FP32 (non-tensor) TFLOP/s: SMs × FP32 lanes × 2 × boost clock.
    pub fp32_tflops: f64,
    /// Memory bandwidth in GB/s: 2 × memory clock × bus width.
    pub bandwidth_gb_s: f64,
}

/// FP32 lanes per SM by compute capability (64 on Volta/Turing/A100, 128 on the others since
/// Ampere GA10x, Ada and Hopper).
pub fn fp32_lanes_per_sm(cc: (i32, i32)) -> u32 {
    match cc {
        (7, _) | (8, 0) => 64,
        (6, 0) => 64,
        _ => 128,
    }
}

/// The pixels of a batch of images on the device, one after the other.
pub struct DeviceImages {
    data: CudaSlice<u8>,
    offsets: Vec<u64>,
    sizes: Vec<(u32, u32)>,
}

impl std::fmt::Debug for DeviceImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceImages")
            .field("sizes", &self.sizes)
            .finish()
    }
}

/// A gallery matrix on the device.
pub struct GpuGallery {
    data: cudarc::driver::CudaSlice<f32>,
    rows: usize,
    dim: usize,
}

impl std::fmt::Debug for GpuGallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuGallery")
            .field("rows", &self.rows)
            .field("dim", &self.dim)
            .finish()
    }
}

impl GpuGallery {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
}
