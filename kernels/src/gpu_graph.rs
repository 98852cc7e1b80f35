//! Our graph executor on a CUDA device: a [`Plan`]'s slots are allocated once on the device
//! (their sizes are known when the plan is made, so a batch size and view size fix the device
//! memory at start-up), its parameters uploaded once, and every step launched from
//! `graph.cu` on the [`Gpu`]'s stream. [`GpuGraph::run_device`] takes an input already on the
//! device (the letterbox or warp kernels' output) so that pixels never come back to the host;
//! [`GpuGraph::run`] uploads a host input and downloads the outputs, for tests and tools.
// Kernel launches are `unsafe` in cudarc (the argument list is not checked against the
// kernel's signature): every launch below passes exactly the arguments graph.cu declares, in
// order, with buffers of the sizes the plan gives for the grid it launches.
#![allow(unsafe_code)]

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Activation, Plan, Step};
use crate::twin::graph::Tensor;

const THREADS: u32 = 256;

fn drv(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::driver(op, format!("{e:?}"))
}

fn grid(n: usize) -> Result<LaunchConfig> {
    let blocks = n.div_ceil(THREADS as usize).max(1);
    let blocks = u32::try_from(blocks)
        .map_err(|_| Error::invalid("graph", format!("{n} elements exceed one launch")))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

fn act_args(a: Activation) -> (i32, f32, f32) {
    match a {
        Activation::Identity => (0, 0.0, 0.0),
        Activation::Relu => (1, 0.0, 0.0),
        Activation::Clip { lo, hi } => (2, lo, hi),
    }
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid("graph", format!("{v} does not fit a kernel int")))
}

/// A plan resident on the device.
pub struct GpuGraph {
    plan: Plan,
    slots: Vec<CudaSlice<f32>>,
    params: CudaSlice<f32>,
    /// Per step: the transpose metadata (rank, output dims, input strides), if any.
    meta: Vec<Option<CudaSlice<i64>>>,
    /// 1×1 convolutions as cuBLAS GEMMs (then `bias_act`) instead of `conv2d`.
    pointwise_gemm: bool,
}

impl std::fmt::Debug for GpuGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuGraph")
            .field("input_dims", &self.plan.input_dims)
            .field("slots", &self.plan.slots)
            .finish()
    }
}

/// The slots a step reads (in order) and the one it writes, borrowed together.
fn io<'a>(
    slots: &'a mut [CudaSlice<f32>],
    ins: &[usize],
    out: usize,
) -> Result<(Vec<&'a CudaSlice<f32>>, &'a mut CudaSlice<f32>)> {
    let mut got: Vec<Option<&CudaSlice<f32>>> = vec![None; ins.len()];
    let mut o = None;
    for (i, s) in slots.iter_mut().enumerate() {
        if i == out {
            o = Some(s);
        } else if ins.contains(&i) {
            let r: &CudaSlice<f32> = s;
            for (k, &x) in ins.iter().enumerate() {
                if x == i {
                    got[k] = Some(r);
                }
            }
        }
    }
    let ins = got
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::invalid("graph", "a step reads a slot it writes or a missing one"))?;
    Ok((
        ins,
        o.ok_or_else(|| Error::invalid("graph", "a step writes a missing slot"))?,
    ))
}

impl Gpu {
    /// Puts `plan` on the device: every slot allocated at its planned size, parameters and
    /// transpose metadata uploaded. Fails with a driver error (out of memory included) and
    /// leaves nothing allocated.
    pub fn graph(&self, plan: &Plan) -> Result<GpuGraph> {
        let s = self.stream();
        let mut slots = Vec::with_capacity(plan.slots.len());
        for &cap in &plan.slots {
            slots.push(
                s.alloc_zeros::<f32>(cap.max(1))
                    .map_err(drv("alloc slot"))?,
            );
        }
        let params = s
            .clone_htod(if plan.params.is_empty() {
                &[0.0f32][..]
            } else {
                &plan.params[..]
            })
            .map_err(drv("upload parameters"))?;
        let mut meta = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            meta.push(match step {
                Step::Transpose { dims, perm, .. } => {
                    let rank = dims.len();
                    let mut in_strides = vec![1i64; rank];
                    for a in (0..rank.saturating_sub(1)).rev() {
                        in_strides[a] = in_strides[a + 1] * dims[a + 1] as i64;
                    }
                    let mut m = vec![0i64; 13];
                    m[0] = rank as i64;
                    for (i, &a) in perm.iter().enumerate() {
                        m[1 + i] = dims[a] as i64;
                        m[7 + i] = in_strides[a];
                    }
                    Some(s.clone_htod(&m).map_err(drv("upload transpose metadata"))?)
                }
                _ => None,
            });
        }
        Ok(GpuGraph {
            plan: plan.clone(),
            slots,
            params,
            meta,
            pointwise_gemm: true,
        })
    }

    /// Uploads `input` into the plan's input slot, runs it and downloads the outputs.
    pub fn run_graph(&self, g: &mut GpuGraph, input: &[f32]) -> Result<Vec<Tensor>> {
        let want: usize = g.plan.input_dims.iter().product();
        if input.len() != want {
            return Err(Error::invalid(
                "graph",
                format!(
                    "input has {} values, the plan's shape {:?} needs {want}",
                    input.len(),
                    g.plan.input_dims
                ),
            ));
        }
        let slot = g.plan.input_slot;
        let s = self.stream();
        {
            let mut dst = g.slots[slot].slice_mut(..want);
            s.memcpy_htod(input, &mut dst)
                .map_err(drv("upload input"))?;
        }
        self.launch_graph(g)?;
        let mut out = Vec::with_capacity(g.plan.outputs.len());
        for o in &g.plan.outputs {
            let len = o.dims.iter().product::<usize>();
            let data = s
                .clone_dtoh(&g.slots[o.slot].slice(..len))
                .map_err(drv("download output"))?;
            out.push(Tensor {
                name: o.name.clone(),
                dims: o.dims.clone(),
                data,
            });
        }
        Ok(out)
    }

    /// Copies a device-resident input (e.g. the letterbox kernel's output) into the plan's
    /// input slot on the stream and runs the plan; the outputs stay on the device
    /// ([`GpuGraph::output`]).
    pub fn run_graph_device(&self, g: &mut GpuGraph, input: &CudaView<'_, f32>) -> Result<()> {
        let want: usize = g.plan.input_dims.iter().product();
        if input.len() != want {
            return Err(Error::invalid(
                "graph",
                format!(
                    "device input has {} values, the plan needs {want}",
                    input.len()
                ),
            ));
        }
        let slot = g.plan.input_slot;
        {
            let mut dst = g.slots[slot].slice_mut(..want);
            self.stream()
                .memcpy_dtod(input, &mut dst)
                .map_err(drv("copy input"))?;
        }
        self.launch_graph(g)
    }

    /// Runs every step of the plan on the input already in its input slot
    /// ([`GpuGraph::input_mut`]); the outputs stay on the device ([`GpuGraph::output`]).
    pub fn launch_graph(&self, g: &mut GpuGraph) -> Result<()> {
        let s = self.stream().clone();
        for (k, step) in g.plan.steps.iter().enumerate() {
            let (ins, out) = io(&mut g.slots, &step.inputs(), step.output())?;
            let n = step.output_len();
            let cfg = grid(n)?;
            match step {
                Step::Conv(c)
                    if g.pointwise_gemm
                        && c.kernel == (1, 1)
                        && c.stride == (1, 1)
                        && c.pad == (0, 0)
                        && c.group == 1 =>
                {
                    let hw = c.h_out * c.w_out;
                    // Column-major view: out[img]^T (hw x c_out) = in[img]^T (hw x c_in) *
                    // W^T (c_in x c_out), the ONNX weights [c_out, c_in] row-major being W^T
                    // column-major with ld c_in.
                    let cfg_gemm = StridedBatchedConfig {
                        gemm: GemmConfig {
                            transa: cublasOperation_t::CUBLAS_OP_N,
                            transb: cublasOperation_t::CUBLAS_OP_N,
                            m: int(hw)?,
                            n: int(c.c_out)?,
                            k: int(c.c_in)?,
                            alpha: 1.0f32,
                            lda: int(hw)?,
                            ldb: int(c.c_in)?,
                            beta: 0.0f32,
                            ldc: int(hw)?,
                        },
                        batch_size: int(c.n)?,
                        stride_a: (c.c_in * hw) as i64,
                        stride_b: 0,
                        stride_c: (c.c_out * hw) as i64,
                    };
                    let w = g.params.slice(c.weight..c.weight + c.c_out * c.c_in);
                    // SAFETY: A is n blocks of hw x c_in (the input slot holds n*c_in*hw),
                    // B is c_in x c_out (the weights), C is n blocks of hw x c_out (the output
                    // slot holds n*c_out*hw, the step's output length).
                    unsafe { self.blas().gemm_strided_batched(cfg_gemm, ins[0], &w, out) }
                        .map_err(|e| {
                            Error::driver("cuBLAS sgemm (1x1 convolution)", format!("{e:?}"))
                        })?;
                    let f = self.function("bias_act")?;
                    let (a, lo, hi) = act_args(c.activation);
                    let b = g.params.slice(c.bias..c.bias + c.c_out);
                    let (len, c_out, hw) = (n as i64, int(c.c_out)?, hw as i64);
                    let mut l = s.launch_builder(f);
                    l.arg(&mut *out)
                        .arg(&b)
                        .arg(&len)
                        .arg(&c_out)
                        .arg(&hw)
                        .arg(&a)
                        .arg(&lo)
                        .arg(&hi);
                    // SAFETY: bias_act's 8 arguments in order; one thread per output element.
                    unsafe { l.launch(cfg) }.map_err(drv("bias_act"))?;
                }
                Step::Conv(c) => {
                    let f = self.function("conv2d")?;
                    let (a, lo, hi) = act_args(c.activation);
                    let w = g.params.slice(c.weight..);
                    let b = g.params.slice(c.bias..);
                    let dims = [
                        c.n, c.c_in, c.h_in, c.w_in, c.c_out, c.h_out, c.w_out, c.kernel.0,
                        c.kernel.1, c.stride.0, c.stride.1, c.pad.0, c.pad.1, c.group,
                    ]
                    .iter()
                    .map(|&v| int(v))
                    .collect::<Result<Vec<i32>>>()?;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0]).arg(&w).arg(&b).arg(&mut *out);
                    for d in &dims {
                        l.arg(d);
                    }
                    l.arg(&a).arg(&lo).arg(&hi);
                    // SAFETY: conv2d's 21 arguments in order; one thread per output element.
                    unsafe { l.launch(cfg) }.map_err(drv("conv2d"))?;
                }
                Step::MaxPool {
                    planes,
                    h_in,
                    w_in,
                    h_out,
                    w_out,
                    kernel,
                    stride,
                    pad,
                    ..
                } => {
                    let f = self.function("max_pool")?;
                    let dims = [
                        *planes, *h_in, *w_in, *h_out, *w_out, kernel.0, kernel.1, stride.0,
                        stride.1, pad.0, pad.1,
                    ]
                    .iter()
                    .map(|&v| int(v))
                    .collect::<Result<Vec<i32>>>()?;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0]).arg(&mut *out);
                    for d in &dims {
                        l.arg(d);
                    }
                    // SAFETY: max_pool's 13 arguments in order; one thread per output element.
                    unsafe { l.launch(cfg) }.map_err(drv("max_pool"))?;
                }
                Step::ResizeNearest {
                    planes,
                    h_in,
                    w_in,
                    h_out,
                    w_out,
                    scale,
                    ..
                } => {
                    let f = self.function("resize_nearest")?;
                    let dims = [*planes, *h_in, *w_in, *h_out, *w_out]
                        .iter()
                        .map(|&v| int(v))
                        .collect::<Result<Vec<i32>>>()?;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0]).arg(&mut *out);
                    for d in &dims {
                        l.arg(d);
                    }
                    l.arg(&scale.0).arg(&scale.1);
                    // SAFETY: resize_nearest's 9 arguments in order.
                    unsafe { l.launch(cfg) }.map_err(drv("resize_nearest"))?;
                }
                Step::Add { activation, .. } => {
                    let f = self.function("add_act")?;
                    let (a, lo, hi) = act_args(*activation);
                    let len = n as i64;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0])
                        .arg(ins[1])
                        .arg(&mut *out)
                        .arg(&len)
                        .arg(&a)
                        .arg(&lo)
                        .arg(&hi);
                    // SAFETY: add_act's 7 arguments in order.
                    unsafe { l.launch(cfg) }.map_err(drv("add_act"))?;
                }
                Step::Activate { activation, .. } => {
                    let f = self.function("act")?;
                    let (a, lo, hi) = act_args(*activation);
                    let len = n as i64;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0])
                        .arg(&mut *out)
                        .arg(&len)
                        .arg(&a)
                        .arg(&lo)
                        .arg(&hi);
                    // SAFETY: act's 6 arguments in order.
                    unsafe { l.launch(cfg) }.map_err(drv("act"))?;
                }
                Step::Sigmoid { .. } => {
                    let f = self.function("sigmoid")?;
                    let len = n as i64;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0]).arg(&mut *out).arg(&len);
                    // SAFETY: sigmoid's 3 arguments in order.
                    unsafe { l.launch(cfg) }.map_err(drv("sigmoid"))?;
                }
                Step::Transpose { .. } => {
                    let f = self.function("transpose")?;
                    let meta = g.meta[k]
                        .as_ref()
                        .ok_or_else(|| Error::invalid("graph", "transpose without metadata"))?;
                    let len = n as i64;
                    let mut l = s.launch_builder(f);
                    l.arg(ins[0]).arg(&mut *out).arg(&len).arg(meta);
                    // SAFETY: transpose's 4 arguments in order; meta has 13 entries.
                    unsafe { l.launch(cfg) }.map_err(drv("transpose"))?;
                }
            }
        }
        Ok(())
    }
}

impl GpuGraph {
    /// The plan it runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether 1×1 convolutions run as cuBLAS GEMMs (the default; `false`: the `conv2d`
    /// kernel, whose arithmetic is the CPU twin's operation for operation).
    pub fn set_pointwise_gemm(&mut self, on: bool) {
        self.pointwise_gemm = on;
    }

    /// The input slot, exactly as long as the plan's input, for a kernel to write into.
    pub fn input_mut(&mut self) -> CudaViewMut<'_, f32> {
        let len = self.plan.input_dims.iter().product::<usize>();
        let slot = self.plan.input_slot;
        self.slots[slot].slice_mut(..len)
    }

    /// Output `i` of the last run, writable in place (e.g. for the L2 normalisation).
    pub fn output_mut(&mut self, i: usize) -> Option<CudaViewMut<'_, f32>> {
        let o = self.plan.outputs.get(i)?;
        let len = o.dims.iter().product::<usize>();
        let slot = o.slot;
        Some(self.slots.get_mut(slot)?.slice_mut(..len))
    }

    /// Output `i` of the last run, on the device.
    pub fn output(&self, i: usize) -> Option<CudaView<'_, f32>> {
        let o = self.plan.outputs.get(i)?;
        let len = o.dims.iter().product::<usize>();
        Some(self.slots.get(o.slot)?.slice(..len))
    }

    /// Device memory held by the slots and parameters, in bytes.
    pub fn device_bytes(&self) -> usize {
        let slots: usize = self.slots.iter().map(|s| s.len() * 4).sum();
        slots + self.params.len() * 4
    }
}
