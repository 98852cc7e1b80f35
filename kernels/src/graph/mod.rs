//! Our own executor of the detector and embedder graphs (YuNet, MobileFaceNet), for the CUDA
//! route that does not need onnxruntime-gpu.
//!
//! [`Model::load`] reads an ONNX file (the subset of `onnx.proto` in `onnx.rs`) and keeps its
//! nodes and constants. [`Plan::new`] turns it into a list of [`Step`]s for one concrete input
//! shape: shape arithmetic (`Shape`, `Gather`, `Unsqueeze`, `Concat`, the targets of `Reshape`)
//! is folded at planning time, `Relu`/`Clip` after a `Conv` or `Add` are fused into it,
//! `Reshape` is a view, and activations live in a few reused slots (sized once, so a device can
//! allocate all of them at start-up). The steps are executed by the CPU twin
//! ([`crate::twin::graph`], the reference) and, on a GPU, by the `graph.cu` kernels.
//!
//! Only what the two graphs use is accepted: `Conv` (any group, kernel, stride and padding,
//! dilation 1), `Relu`, `Clip`, `Add` (same shape), `MaxPool`, `Resize` (nearest, asymmetric,
//! floor), `Sigmoid`, `Transpose`, `Reshape`, the shape operators and `Constant`. Anything else
//! is refused when the plan is made, with the node's name and operator.

mod onnx;

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};

/// The data of a constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstData {
    /// 32-bit floats (weights, biases, scales, clip bounds).
    F32(Vec<f32>),
    /// 64-bit integers (shapes, indices).
    I64(Vec<i64>),
}

/// A constant of the graph: an initialiser or the value of a `Constant` node.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstTensor {
    /// Its shape.
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub data: ConstData,
}

impl ConstTensor {
    fn len(&self) -> usize {
        match &self.data {
            ConstData::F32(v) => v.len(),
            ConstData::I64(v) => v.len(),
        }
    }

    fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            ConstData::I64(v) => Some(v),
            ConstData::F32(_) => None,
        }
    }

    fn floats(&self) -> Option<&[f32]> {
        match &self.data {
            ConstData::F32(v) => Some(v),
            ConstData::I64(_) => None,
        }
    }
}

/// An attribute value of a node.
#[derive(Debug, Clone, PartialEq)]
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Str(String),
    Tensor(ConstTensor),
}

#[derive(Debug, Clone)]
struct Node {
    op: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: HashMap<String, Attr>,
}

impl Node {
    fn label(&self) -> String {
        format!("{} node '{}'", self.op, self.name)
    }

    fn int(&self, key: &str, default: i64) -> i64 {
        match self.attrs.get(key) {
            Some(Attr::Int(v)) => *v,
            _ => default,
        }
    }

    fn ints(&self, key: &str) -> Option<&[i64]> {
        match self.attrs.get(key) {
            Some(Attr::Ints(v)) => Some(v),
            _ => None,
        }
    }

    fn string(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Attr::Str(v)) => Some(v),
            _ => None,
        }
    }

    fn float(&self, key: &str) -> Option<f32> {
        match self.attrs.get(key) {
            Some(Attr::Float(v)) => Some(*v),
            _ => None,
        }
    }
}

/// An ONNX graph as the executor sees it.
#[derive(Debug, Clone)]
pub struct Model {
    name: String,
    opset: i64,
    input: String,
    outputs: Vec<String>,
    nodes: Vec<Node>,
    constants: HashMap<String, ConstTensor>,
}

fn graph_error(model: &str, message: impl Into<String>) -> Error {
    Error::Graph {
        model: model.to_owned(),
        message: message.into(),
    }
}

fn to_dims(model: &str, what: &str, dims: &[i64]) -> Result<Vec<usize>> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| graph_error(model, format!("{what}: negative dimension {d}")))
        })
        .collect()
}

fn tensor(model: &str, t: &onnx::TensorProto) -> Result<ConstTensor> {
    let what = format!("tensor '{}'", t.name);
    if t.data_location != 0 {
        return Err(graph_error(
            model,
            format!("{what}: external data is not supported"),
        ));
    }
    let dims = to_dims(model, &what, &t.dims)?;
    let count = dims.iter().product::<usize>();
    let data = match t.data_type {
        onnx::FLOAT => {
            let v: Vec<f32> = if t.raw_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            ConstData::F32(v)
        }
        onnx::INT64 => {
            let v: Vec<i64> = if t.raw_data.is_empty() {
                t.int64_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            };
            ConstData::I64(v)
        }
        onnx::INT32 => {
            let v: Vec<i64> = if t.raw_data.is_empty() {
                t.int32_data.iter().map(|&x| i64::from(x)).collect()
            } else {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            };
            ConstData::I64(v)
        }
        other => {
            return Err(graph_error(
                model,
                format!("{what}: element type {other} is not supported (float, int32, int64 are)"),
            ));
        }
    };
    let out = ConstTensor { dims, data };
    if out.len() != count {
        return Err(graph_error(
            model,
            format!(
                "{what}: {} values for shape {:?} ({count})",
                out.len(),
                out.dims
            ),
        ));
    }
    Ok(out)
}

impl Model {
    /// Reads an ONNX file.
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| graph_error(&name, format!("cannot read the file: {e}")))?;
        Self::from_bytes(&name, &bytes)
    }

    /// Parses an ONNX model; `name` is used in error messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let proto = onnx::ModelProto::decode(bytes)
            .map_err(|e| graph_error(name, format!("not an ONNX model: {e}")))?;
        let opset = proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or_else(|| graph_error(name, "no default-domain opset import"))?;
        let graph = proto
            .graph
            .ok_or_else(|| graph_error(name, "the model has no graph"))?;
        let mut constants = HashMap::new();
        for t in &graph.initializer {
            constants.insert(t.name.clone(), tensor(name, t)?);
        }
        let inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| !constants.contains_key(*n))
            .collect();
        let input = match inputs.as_slice() {
            [one] => (*one).to_owned(),
            other => {
                return Err(graph_error(
                    name,
                    format!("expected one graph input, found {}", other.len()),
                ));
            }
        };
        let outputs = graph.output.iter().map(|v| v.name.clone()).collect();
        let mut nodes = Vec::with_capacity(graph.node.len());
        for n in &graph.node {
            if !(n.domain.is_empty() || n.domain == "ai.onnx") {
                return Err(graph_error(
                    name,
                    format!(
                        "{} node '{}': operator domain '{}' is not supported",
                        n.op_type, n.name, n.domain
                    ),
                ));
            }
            let mut attrs = HashMap::new();
            for a in &n.attribute {
                let v = match a.r#type {
                    onnx::ATTR_INT => Attr::Int(a.i),
                    onnx::ATTR_INTS => Attr::Ints(a.ints.clone()),
                    onnx::ATTR_FLOAT => Attr::Float(a.f),
                    onnx::ATTR_FLOATS => Attr::Floats(a.floats.clone()),
                    onnx::ATTR_STRING => Attr::Str(String::from_utf8_lossy(&a.s).into_owned()),
                    onnx::ATTR_TENSOR => match &a.t {
                        Some(t) => Attr::Tensor(tensor(name, t)?),
                        None => continue,
                    },
                    _ => continue,
                };
                attrs.insert(a.name.clone(), v);
            }
            nodes.push(Node {
                op: n.op_type.clone(),
                name: n.name.clone(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
                attrs,
            });
        }
        Ok(Self {
            name: name.to_owned(),
            opset,
            input,
            outputs,
            nodes,
            constants,
        })
    }

    /// The model's name (its path when loaded from a file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The default-domain opset the graph was exported with.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The graph's output names, in order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }
}

/// An activation fused into the step that produces a tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Relu => x.max(0.0),
            Self::Clip { lo, hi } => x.max(lo).min(hi),
        }
    }
}

/// A 2-D convolution over NCHW tensors, bias included (weights in ONNX order:
/// `[c_out, c_in / group, kh, kw]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// Input slot.
    pub input: usize,
    /// Output slot.
    pub output: usize,
    /// Batch size.
    pub n: usize,
    /// Input channels, height, width.
    pub c_in: usize,
    /// Input height.
    pub h_in: usize,
    /// Input width.
    pub w_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Output height.
    pub h_out: usize,
    /// Output width.
    pub w_out: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Vertical and horizontal stride.
    pub stride: (usize, usize),
    /// Padding at the top and left (the bottom and right follow from the output size).
    pub pad: (usize, usize),
    /// Number of groups (1: dense, `c_in`: depthwise).
    pub group: usize,
    /// Offset of the weights in [`Plan::params`].
    pub weight: usize,
    /// Offset of the `c_out` biases in [`Plan::params`].
    pub bias: usize,
    /// Fused activation.
    pub activation: Activation,
}

/// One step of a plan. Slots are indices into [`Plan::slots`]; a step never reads and writes
/// the same slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Convolution + bias + activation.
    Conv(Conv),
    /// Max pooling over `planes` planes of `h_in × w_in` (padding never wins).
    MaxPool {
        /// Input slot.
        input: usize,
        /// Output slot.
        output: usize,
        /// Batch × channels.
        planes: usize,
        /// Input height.
        h_in: usize,
        /// Input width.
        w_in: usize,
        /// Output height.
        h_out: usize,
        /// Output width.
        w_out: usize,
        /// Window height and width.
        kernel: (usize, usize),
        /// Vertical and horizontal stride.
        stride: (usize, usize),
        /// Padding at the top and left.
        pad: (usize, usize),
    },
    /// Nearest-neighbour resize, asymmetric coordinates, floor: `src = floor(dst / scale)`.
    ResizeNearest {
        /// Input slot.
        input: usize,
        /// Output slot.
        output: usize,
        /// Batch × channels.
        planes: usize,
        /// Input height.
        h_in: usize,
        /// Input width.
        w_in: usize,
        /// Output height.
        h_out: usize,
        /// Output width.
        w_out: usize,
        /// Vertical and horizontal scale.
        scale: (f32, f32),
    },
    /// Element-wise sum of two tensors of the same shape, then an activation.
    Add {
        /// First input slot.
        a: usize,
        /// Second input slot.
        b: usize,
        /// Output slot.
        output: usize,
        /// Element count.
        len: usize,
        /// Fused activation.
        activation: Activation,
    },
    /// An activation on its own (when it could not be fused).
    Activate {
        /// Input slot.
        input: usize,
        /// Output slot.
        output: usize,
        /// Element count.
        len: usize,
        /// The activation.
        activation: Activation,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid {
        /// Input slot.
        input: usize,
        /// Output slot.
        output: usize,
        /// Element count.
        len: usize,
    },
    /// Permutation of the axes of a tensor of rank ≤ 6.
    Transpose {
        /// Input slot.
        input: usize,
        /// Output slot.
        output: usize,
        /// Input shape.
        dims: Vec<usize>,
        /// Output axis `i` is input axis `perm[i]`.
        perm: Vec<usize>,
    },
}

impl Step {
    /// The slots the step reads.
    pub fn inputs(&self) -> Vec<usize> {
        match self {
            Self::Conv(c) => vec![c.input],
            Self::Add { a, b, .. } => vec![*a, *b],
            Self::MaxPool { input, .. }
            | Self::ResizeNearest { input, .. }
            | Self::Activate { input, .. }
            | Self::Sigmoid { input, .. }
            | Self::Transpose { input, .. } => vec![*input],
        }
    }

    /// The slot the step writes.
    pub fn output(&self) -> usize {
        match self {
            Self::Conv(c) => c.output,
            Self::MaxPool { output, .. }
            | Self::ResizeNearest { output, .. }
            | Self::Add { output, .. }
            | Self::Activate { output, .. }
            | Self::Sigmoid { output, .. }
            | Self::Transpose { output, .. } => *output,
        }
    }

    /// Element count of the output.
    pub fn output_len(&self) -> usize {
        match self {
            Self::Conv(c) => c.n * c.c_out * c.h_out * c.w_out,
            Self::MaxPool {
                planes,
                h_out,
                w_out,
                ..
            }
            | Self::ResizeNearest {
                planes,
                h_out,
                w_out,
                ..
            } => planes * h_out * w_out,
            Self::Add { len, .. } | Self::Activate { len, .. } | Self::Sigmoid { len, .. } => *len,
            Self::Transpose { dims, .. } => dims.iter().product(),
        }
    }

    /// Multiply-accumulate operations (convolutions) or element operations (the rest).
    pub fn work(&self) -> usize {
        match self {
            Self::Conv(c) => {
                c.n * c.c_out * c.h_out * c.w_out * (c.c_in / c.group) * c.kernel.0 * c.kernel.1
            }
            other => other.output_len(),
        }
    }

    fn remap(&mut self, f: &dyn Fn(usize) -> usize) {
        match self {
            Self::Conv(c) => {
                c.input = f(c.input);
                c.output = f(c.output);
            }
            Self::Add { a, b, output, .. } => {
                *a = f(*a);
                *b = f(*b);
                *output = f(*output);
            }
            Self::MaxPool { input, output, .. }
            | Self::ResizeNearest { input, output, .. }
            | Self::Activate { input, output, .. }
            | Self::Sigmoid { input, output, .. }
            | Self::Transpose { input, output, .. } => {
                *input = f(*input);
                *output = f(*output);
            }
        }
    }

    fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            Self::Conv(c) => Some(&mut c.activation),
            Self::Add { activation, .. } => Some(activation),
            _ => None,
        }
    }
}

/// A graph output of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutput {
    /// The graph's name for it.
    pub name: String,
    /// The slot that holds it after the last step.
    pub slot: usize,
    /// Its shape.
    pub dims: Vec<usize>,
}

/// The steps of a graph for one input shape, with its slots and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The input shape the plan was made for.
    pub input_dims: Vec<usize>,
    /// The slot the input is written to (never reused).
    pub input_slot: usize,
    /// Capacity of every slot in `f32` elements.
    pub slots: Vec<usize>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The graph outputs, in the graph's order.
    pub outputs: Vec<PlanOutput>,
    /// Every convolution's weights and biases, packed.
    pub params: Vec<f32>,
}

/// A value during planning: a constant or an activation (value id + shape).
#[derive(Debug, Clone)]
enum Val {
    Const(ConstTensor),
    Act { value: usize, dims: Vec<usize> },
}

struct Planner<'m> {
    model: &'m Model,
    vals: HashMap<String, Val>,
    /// Element count of every activation value.
    sizes: Vec<usize>,
    steps: Vec<Step>,
    params: Vec<f32>,
    /// Consumers of each name (to decide fusion).
    consumers: HashMap<&'m str, usize>,
    /// The name and step index of the last step's output, when that step can take a fused
    /// activation.
    fusable: HashMap<String, usize>,
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        usize::try_from(a).ok()
    } else {
        None
    }
}

impl<'m> Planner<'m> {
    fn err(&self, node: &Node, message: impl std::fmt::Display) -> Error {
        graph_error(&self.model.name, format!("{}: {message}", node.label()))
    }

    fn get(&self, node: &Node, i: usize) -> Result<&Val> {
        let name = node
            .inputs
            .get(i)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| self.err(node, format!("input {i} is missing")))?;
        self.vals
            .get(name)
            .ok_or_else(|| self.err(node, format!("input '{name}' is not defined before it")))
    }

    fn has(&self, node: &Node, i: usize) -> bool {
        node.inputs.get(i).is_some_and(|n| !n.is_empty())
    }

    fn act(&self, node: &Node, i: usize) -> Result<(usize, Vec<usize>)> {
        match self.get(node, i)? {
            Val::Act { value, dims } => Ok((*value, dims.clone())),
            Val::Const(_) => Err(self.err(
                node,
                format!("input {i} is a constant; only activations are supported there"),
            )),
        }
    }

    fn constant(&self, node: &Node, i: usize) -> Result<ConstTensor> {
        match self.get(node, i)? {
            Val::Const(t) => Ok(t.clone()),
            Val::Act { .. } => Err(self.err(
                node,
                format!("input {i} must be a constant (it is computed from the input)"),
            )),
        }
    }

    fn new_value(&mut self, len: usize) -> usize {
        self.sizes.push(len);
        self.sizes.len() - 1
    }

    fn output_name<'n>(&self, node: &'n Node) -> Result<&'n str> {
        node.outputs
            .first()
            .map(String::as_str)
            .ok_or_else(|| self.err(node, "no output"))
    }

    fn push(&mut self, node: &Node, step: Step, dims: Vec<usize>, value: usize) -> Result<()> {
        let name = self.output_name(node)?.to_owned();
        let fusable = matches!(step, Step::Conv(_) | Step::Add { .. });
        self.steps.push(step);
        if fusable {
            self.fusable.insert(name.clone(), self.steps.len() - 1);
        }
        self.vals.insert(name, Val::Act { value, dims });
        Ok(())
    }

    fn set_const(&mut self, node: &Node, t: ConstTensor) -> Result<()> {
        let name = self.output_name(node)?.to_owned();
        self.vals.insert(name, Val::Const(t));
        Ok(())
    }

    /// `Relu`/`Clip`: fused into the producing `Conv`/`Add` when it is that step's only
    /// consumer and not a graph output, else a step of its own.
    fn activation(&mut self, node: &Node, activation: Activation) -> Result<()> {
        let src = node.inputs.first().cloned().unwrap_or_default();
        let (value, dims) = self.act(node, 0)?;
        let sole = self.consumers.get(src.as_str()).copied() == Some(1)
            && !self.model.outputs.contains(&src);
        if let Some(&at) = self.fusable.get(&src)
            && sole
            && let Some(slot) = self.steps.get_mut(at).and_then(Step::activation_mut)
            && *slot == Activation::Identity
        {
            *slot = activation;
            let name = self.output_name(node)?.to_owned();
            self.fusable.insert(name.clone(), at);
            self.vals.insert(name, Val::Act { value, dims });
            return Ok(());
        }
        let len = dims.iter().product();
        let out = self.new_value(len);
        self.push(
            node,
            Step::Activate {
                input: value,
                output: out,
                len,
                activation,
            },
            dims,
            out,
        )
    }

    fn conv(&mut self, node: &Node) -> Result<()> {
        let (input, dims) = self.act(node, 0)?;
        let [n, c_in, h_in, w_in] = dims[..] else {
            return Err(self.err(node, format!("input shape {dims:?} is not NCHW")));
        };
        let w = self.constant(node, 1)?;
        let weights = w
            .floats()
            .ok_or_else(|| self.err(node, "weights are not float"))?;
        let [c_out, c_per_group, kh, kw] = w.dims[..] else {
            return Err(self.err(node, format!("weight shape {:?} is not 4-D", w.dims)));
        };
        let group = usize::try_from(node.int("group", 1))
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| self.err(node, "group must be positive"))?;
        if c_in % group != 0 || c_out % group != 0 || c_in / group != c_per_group {
            return Err(self.err(
                node,
                format!(
                    "{c_in} input channels, {c_out} outputs, group {group} and weights {:?} do not fit",
                    w.dims
                ),
            ));
        }
        if let Some(ks) = node.ints("kernel_shape")
            && ks != [kh as i64, kw as i64]
        {
            return Err(self.err(
                node,
                format!("kernel_shape {ks:?} differs from the weights"),
            ));
        }
        if node
            .ints("dilations")
            .is_some_and(|d| d.iter().any(|&x| x != 1))
        {
            return Err(self.err(node, "dilation other than 1 is not supported"));
        }
        if node.string("auto_pad").is_some_and(|p| p != "NOTSET") {
            return Err(self.err(node, "auto_pad is not supported (explicit pads are)"));
        }
        let s = node.ints("strides").unwrap_or(&[1, 1]).to_vec();
        let p = node.ints("pads").unwrap_or(&[0, 0, 0, 0]).to_vec();
        let (Ok([sh, sw]), Ok([pt, pl, pb, pr])) = (
            <[i64; 2]>::try_from(s.as_slice()),
            <[i64; 4]>::try_from(p.as_slice()),
        ) else {
            return Err(self.err(node, format!("strides {s:?} or pads {p:?} are not 2-D")));
        };
        let u = |v: i64| usize::try_from(v).ok();
        let (Some(sh), Some(sw), Some(pt), Some(pl), Some(pb), Some(pr)) =
            (u(sh), u(sw), u(pt), u(pl), u(pb), u(pr))
        else {
            return Err(self.err(node, "negative stride or padding"));
        };
        if sh == 0 || sw == 0 || h_in + pt + pb < kh || w_in + pl + pr < kw {
            return Err(self.err(
                node,
                format!("input {h_in}x{w_in} is smaller than the kernel {kh}x{kw}"),
            ));
        }
        let h_out = (h_in + pt + pb - kh) / sh + 1;
        let w_out = (w_in + pl + pr - kw) / sw + 1;
        let weight = self.params.len();
        self.params.extend_from_slice(weights);
        let bias = self.params.len();
        if self.has(node, 2) {
            let b = self.constant(node, 2)?;
            let bv = b
                .floats()
                .filter(|v| v.len() == c_out)
                .ok_or_else(|| self.err(node, format!("bias must be {c_out} floats")))?;
            self.params.extend_from_slice(bv);
        } else {
            self.params.extend(std::iter::repeat_n(0.0, c_out));
        }
        let out_dims = vec![n, c_out, h_out, w_out];
        let out = self.new_value(out_dims.iter().product());
        let step = Step::Conv(Conv {
            input,
            output: out,
            n,
            c_in,
            h_in,
            w_in,
            c_out,
            h_out,
            w_out,
            kernel: (kh, kw),
            stride: (sh, sw),
            pad: (pt, pl),
            group,
            weight,
            bias,
            activation: Activation::Identity,
        });
        self.push(node, step, out_dims, out)
    }

    fn max_pool(&mut self, node: &Node) -> Result<()> {
        let (input, dims) = self.act(node, 0)?;
        let [n, c, h_in, w_in] = dims[..] else {
            return Err(self.err(node, format!("input shape {dims:?} is not NCHW")));
        };
        if node.int("ceil_mode", 0) != 0 || node.ints("dilations").is_some_and(|d| d != [1, 1]) {
            return Err(self.err(node, "ceil_mode and dilation are not supported"));
        }
        if node.outputs.len() > 1 && node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
            return Err(self.err(node, "the indices output is not supported"));
        }
        if node.string("auto_pad").is_some_and(|p| p != "NOTSET") {
            return Err(self.err(node, "auto_pad is not supported"));
        }
        let k = node.ints("kernel_shape").unwrap_or(&[]).to_vec();
        let s = node.ints("strides").unwrap_or(&[1, 1]).to_vec();
        let p = node.ints("pads").unwrap_or(&[0, 0, 0, 0]).to_vec();
        let u = |v: &[i64]| -> Option<Vec<usize>> {
            v.iter().map(|&x| usize::try_from(x).ok()).collect()
        };
        let (Some(k), Some(s), Some(p)) = (u(&k), u(&s), u(&p)) else {
            return Err(self.err(node, "negative kernel, stride or padding"));
        };
        let (&[kh, kw], &[sh, sw], &[pt, pl, pb, pr]) = (&k[..], &s[..], &p[..]) else {
            return Err(self.err(node, "kernel, strides and pads must be 2-D"));
        };
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || h_in + pt + pb < kh || w_in + pl + pr < kw {
            return Err(self.err(node, format!("window {kh}x{kw} does not fit {h_in}x{w_in}")));
        }
        let h_out = (h_in + pt + pb - kh) / sh + 1;
        let w_out = (w_in + pl + pr - kw) / sw + 1;
        let out_dims = vec![n, c, h_out, w_out];
        let out = self.new_value(out_dims.iter().product());
        let step = Step::MaxPool {
            input,
            output: out,
            planes: n * c,
            h_in,
            w_in,
            h_out,
            w_out,
            kernel: (kh, kw),
            stride: (sh, sw),
            pad: (pt, pl),
        };
        self.push(node, step, out_dims, out)
    }

    fn resize(&mut self, node: &Node) -> Result<()> {
        let (input, dims) = self.act(node, 0)?;
        let [n, c, h_in, w_in] = dims[..] else {
            return Err(self.err(node, format!("input shape {dims:?} is not NCHW")));
        };
        let mode = node.string("mode").unwrap_or("nearest");
        let ctm = node
            .string("coordinate_transformation_mode")
            .unwrap_or("half_pixel");
        let nearest = node.string("nearest_mode").unwrap_or("round_prefer_floor");
        if mode != "nearest" || ctm != "asymmetric" || nearest != "floor" {
            return Err(self.err(
                node,
                format!(
                    "mode {mode}, coordinates {ctm}, nearest_mode {nearest}: only nearest, asymmetric, floor is supported"
                ),
            ));
        }
        // Opset 11+: X, roi, scales, sizes (scales or sizes given).
        let (h_out, w_out, scale) =
            if self.has(node, 2) && self.constant(node, 2).is_ok_and(|t| t.len() == 4) {
                let t = self.constant(node, 2)?;
                let sc = t
                    .floats()
                    .ok_or_else(|| self.err(node, "scales must be float"))?;
                if sc[0] != 1.0 || sc[1] != 1.0 || sc[2] <= 0.0 || sc[3] <= 0.0 {
                    return Err(self.err(
                        node,
                        format!("scales {sc:?}: only the spatial axes may be scaled"),
                    ));
                }
                let ho = (h_in as f64 * f64::from(sc[2])).floor() as usize;
                let wo = (w_in as f64 * f64::from(sc[3])).floor() as usize;
                (ho, wo, (sc[2], sc[3]))
            } else if self.has(node, 3) {
                let t = self.constant(node, 3)?;
                let sz = t
                    .ints()
                    .filter(|v| v.len() == 4)
                    .ok_or_else(|| self.err(node, "sizes must be 4 integers"))?;
                let (Ok(ho), Ok(wo)) = (usize::try_from(sz[2]), usize::try_from(sz[3])) else {
                    return Err(self.err(node, "negative size"));
                };
                if sz[0] != n as i64 || sz[1] != c as i64 || ho == 0 || wo == 0 {
                    return Err(self.err(node, format!("sizes {sz:?} change N or C")));
                }
                (ho, wo, (ho as f32 / h_in as f32, wo as f32 / w_in as f32))
            } else {
                return Err(self.err(node, "neither scales nor sizes is given"));
            };
        let out_dims = vec![n, c, h_out, w_out];
        let out = self.new_value(out_dims.iter().product());
        let step = Step::ResizeNearest {
            input,
            output: out,
            planes: n * c,
            h_in,
            w_in,
            h_out,
            w_out,
            scale,
        };
        self.push(node, step, out_dims, out)
    }

    fn add(&mut self, node: &Node) -> Result<()> {
        let (a, da) = self.act(node, 0)?;
        let (b, db) = self.act(node, 1)?;
        if da != db {
            return Err(self.err(
                node,
                format!("shapes {da:?} and {db:?} differ (broadcasting is not supported)"),
            ));
        }
        let len = da.iter().product();
        let out = self.new_value(len);
        let step = Step::Add {
            a,
            b,
            output: out,
            len,
            activation: Activation::Identity,
        };
        self.push(node, step, da, out)
    }

    fn transpose(&mut self, node: &Node) -> Result<()> {
        let (input, dims) = self.act(node, 0)?;
        let rank = dims.len();
        let perm: Vec<usize> = match node.ints("perm") {
            Some(p) => p
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.err(node, format!("perm {p:?} is out of range")))?,
            None => (0..rank).rev().collect(),
        };
        let mut seen = vec![false; rank];
        for &a in &perm {
            if let Some(s) = seen.get_mut(a) {
                *s = true;
            }
        }
        if perm.len() != rank || seen.iter().any(|s| !s) || rank > 6 {
            return Err(self.err(
                node,
                format!("perm {perm:?} is not a permutation of rank {rank} (≤ 6)"),
            ));
        }
        let out_dims: Vec<usize> = perm.iter().map(|&a| dims[a]).collect();
        let out = self.new_value(dims.iter().product());
        let step = Step::Transpose {
            input,
            output: out,
            dims,
            perm,
        };
        self.push(node, step, out_dims, out)
    }

    fn reshape(&mut self, node: &Node) -> Result<()> {
        let target = self.constant(node, 1)?;
        let shape = target
            .ints()
            .ok_or_else(|| self.err(node, "the shape must be integers"))?
            .to_vec();
        let (dims, act) = match self.get(node, 0)? {
            Val::Act { value, dims } => (dims.clone(), Some(*value)),
            Val::Const(t) => (t.dims.clone(), None),
        };
        let total: usize = dims.iter().product();
        let allow_zero = node.int("allowzero", 0) != 0;
        let mut out = Vec::with_capacity(shape.len());
        let mut infer = None;
        for (i, &d) in shape.iter().enumerate() {
            match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                0 if !allow_zero => out.push(
                    *dims
                        .get(i)
                        .ok_or_else(|| self.err(node, format!("0 at axis {i} has no input dim")))?,
                ),
                d if d >= 0 => out.push(d as usize),
                _ => return Err(self.err(node, format!("bad target shape {shape:?}"))),
            }
        }
        let known: usize = out.iter().product();
        if let Some(i) = infer {
            if known == 0 || !total.is_multiple_of(known) {
                return Err(self.err(node, format!("cannot reshape {dims:?} to {shape:?}")));
            }
            out[i] = total / known;
        }
        if out.iter().product::<usize>() != total {
            return Err(self.err(node, format!("cannot reshape {dims:?} to {shape:?}")));
        }
        let name = self.output_name(node)?.to_owned();
        match act {
            Some(value) => {
                self.vals.insert(name, Val::Act { value, dims: out });
            }
            None => {
                let mut t = self.constant(node, 0)?;
                t.dims = out;
                self.vals.insert(name, Val::Const(t));
            }
        }
        Ok(())
    }

    fn shape_op(&mut self, node: &Node) -> Result<()> {
        let dims = match self.get(node, 0)? {
            Val::Act { dims, .. } => dims.clone(),
            Val::Const(t) => t.dims.clone(),
        };
        let v = dims.iter().map(|&d| d as i64).collect::<Vec<_>>();
        self.set_const(
            node,
            ConstTensor {
                dims: vec![v.len()],
                data: ConstData::I64(v),
            },
        )
    }

    fn gather(&mut self, node: &Node) -> Result<()> {
        let data = self.constant(node, 0)?;
        let idx = self.constant(node, 1)?;
        let (Some(values), Some(indices)) = (data.ints(), idx.ints()) else {
            return Err(self.err(node, "only integer shape arithmetic is supported"));
        };
        if data.dims.len() != 1 || node.int("axis", 0) != 0 {
            return Err(self.err(
                node,
                "only gathering from a 1-D tensor on axis 0 is supported",
            ));
        }
        let out: Vec<i64> = indices
            .iter()
            .map(|&i| norm_axis(i, values.len()).map(|i| values[i]))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err(node, format!("index out of range of {values:?}")))?;
        self.set_const(
            node,
            ConstTensor {
                dims: idx.dims.clone(),
                data: ConstData::I64(out),
            },
        )
    }

    fn unsqueeze(&mut self, node: &Node) -> Result<()> {
        let t = self.constant(node, 0)?;
        let axes: Vec<i64> = match node.ints("axes") {
            Some(a) => a.to_vec(),
            None => self
                .constant(node, 1)?
                .ints()
                .ok_or_else(|| self.err(node, "axes must be integers"))?
                .to_vec(),
        };
        let rank = t.dims.len() + axes.len();
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err(node, "axis out of range"))?;
        axes.sort_unstable();
        let mut dims = t.dims.clone();
        for a in axes {
            dims.insert(a.min(dims.len()), 1);
        }
        self.set_const(node, ConstTensor { dims, data: t.data })
    }

    fn concat(&mut self, node: &Node) -> Result<()> {
        let mut out = Vec::new();
        for i in 0..node.inputs.len() {
            let t = self.constant(node, i)?;
            let v = t
                .ints()
                .filter(|_| t.dims.len() <= 1)
                .ok_or_else(|| self.err(node, "only concatenation of 1-D shapes is supported"))?;
            out.extend_from_slice(v);
        }
        self.set_const(
            node,
            ConstTensor {
                dims: vec![out.len()],
                data: ConstData::I64(out),
            },
        )
    }

    fn clip_bounds(&self, node: &Node) -> Result<Activation> {
        let bound = |i: usize, attr: &str, default: f32| -> Result<f32> {
            if self.has(node, i) {
                let t = self.constant(node, i)?;
                t.floats()
                    .and_then(|v| v.first().copied())
                    .ok_or_else(|| self.err(node, format!("input {i} must be one float")))
            } else {
                Ok(node.float(attr).unwrap_or(default))
            }
        };
        Ok(Activation::Clip {
            lo: bound(1, "min", f32::MIN)?,
            hi: bound(2, "max", f32::MAX)?,
        })
    }

    fn node(&mut self, node: &Node) -> Result<()> {
        match node.op.as_str() {
            "Conv" => self.conv(node),
            "Relu" => self.activation(node, Activation::Relu),
            "Clip" => {
                let a = self.clip_bounds(node)?;
                self.activation(node, a)
            }
            "Add" => self.add(node),
            "MaxPool" => self.max_pool(node),
            "Resize" => self.resize(node),
            "Sigmoid" => {
                let (input, dims) = self.act(node, 0)?;
                let len = dims.iter().product();
                let out = self.new_value(len);
                self.push(
                    node,
                    Step::Sigmoid {
                        input,
                        output: out,
                        len,
                    },
                    dims,
                    out,
                )
            }
            "Transpose" => self.transpose(node),
            "Reshape" => self.reshape(node),
            "Shape" => self.shape_op(node),
            "Gather" => self.gather(node),
            "Unsqueeze" => self.unsqueeze(node),
            "Concat" => self.concat(node),
            "Constant" => match node.attrs.get("value") {
                Some(Attr::Tensor(t)) => {
                    let t = t.clone();
                    self.set_const(node, t)
                }
                _ => Err(self.err(node, "only tensor-valued constants are supported")),
            },
            other => Err(self.err(node, format!("operator {other} is not supported"))),
        }
    }
}

impl Plan {
    /// Plans `model` for an input of shape `input_dims` (e.g. `[n, 3, h, w]`).
    pub fn new(model: &Model, input_dims: &[usize]) -> Result<Self> {
        if input_dims.is_empty() || input_dims.contains(&0) {
            return Err(graph_error(
                &model.name,
                format!("input shape {input_dims:?} has an empty dimension"),
            ));
        }
        let mut consumers: HashMap<&str, usize> = HashMap::new();
        for n in &model.nodes {
            for i in &n.inputs {
                *consumers.entry(i.as_str()).or_default() += 1;
            }
        }
        let mut p = Planner {
            model,
            vals: model
                .constants
                .iter()
                .map(|(k, v)| (k.clone(), Val::Const(v.clone())))
                .collect(),
            sizes: Vec::new(),
            steps: Vec::new(),
            params: Vec::new(),
            consumers,
            fusable: HashMap::new(),
        };
        let input_value = p.new_value(input_dims.iter().product());
        p.vals.insert(
            model.input.clone(),
            Val::Act {
                value: input_value,
                dims: input_dims.to_vec(),
            },
        );
        for node in &model.nodes {
            p.node(node)?;
        }
        let mut outputs = Vec::new();
        for name in &model.outputs {
            match p.vals.get(name) {
                Some(Val::Act { value, dims }) => {
                    outputs.push((name.clone(), *value, dims.clone()))
                }
                _ => {
                    return Err(graph_error(
                        &model.name,
                        format!("graph output '{name}' is not computed from the input"),
                    ));
                }
            }
        }
        // Liveness: a value's slot is free after the last step that reads it; outputs and the
        // input are never freed.
        let mut last = vec![0usize; p.sizes.len()];
        for (i, s) in p.steps.iter().enumerate() {
            for v in s.inputs() {
                last[v] = last[v].max(i);
            }
        }
        let keep: Vec<usize> = outputs.iter().map(|o| o.1).collect();
        let mut slot_of = vec![usize::MAX; p.sizes.len()];
        let mut slots = vec![p.sizes[input_value]];
        slot_of[input_value] = 0;
        let mut free: Vec<usize> = Vec::new();
        for (i, s) in p.steps.iter().enumerate() {
            let v = s.output();
            let need = p.sizes[v];
            // Best fit among the free slots, else grow the largest, else a new slot.
            let pick = free
                .iter()
                .enumerate()
                .filter(|&(_, &sl)| slots[sl] >= need)
                .min_by_key(|&(_, &sl)| slots[sl])
                .or_else(|| free.iter().enumerate().max_by_key(|&(_, &sl)| slots[sl]))
                .map(|(k, _)| k);
            let slot = match pick {
                Some(k) => free.swap_remove(k),
                None => {
                    slots.push(0);
                    slots.len() - 1
                }
            };
            slots[slot] = slots[slot].max(need);
            slot_of[v] = slot;
            for r in s.inputs() {
                if last[r] == i && r != input_value && !keep.contains(&r) {
                    let sl = slot_of[r];
                    if !free.contains(&sl) {
                        free.push(sl);
                    }
                }
            }
        }
        let mut steps = p.steps;
        for s in &mut steps {
            s.remap(&|v| slot_of[v]);
        }
        Ok(Self {
            input_dims: input_dims.to_vec(),
            input_slot: 0,
            slots,
            steps,
            outputs: outputs
                .into_iter()
                .map(|(name, v, dims)| PlanOutput {
                    name,
                    slot: slot_of[v],
                    dims,
                })
                .collect(),
            params: p.params,
        })
    }

    /// Total activation memory of the plan in bytes (every slot at its capacity).
    pub fn activation_bytes(&self) -> usize {
        self.slots.iter().sum::<usize>() * 4
    }

    /// Multiply-accumulates of the convolutions.
    pub fn conv_macs(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Conv(_)))
            .map(Step::work)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::onnx::{
        ATTR_INT, ATTR_INTS, ATTR_STRING, AttributeProto, FLOAT, GraphProto, ModelProto, NodeProto,
        OperatorSetIdProto, TensorProto, ValueInfoProto,
    };
    use super::*;

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            ints: v.to_vec(),
            r#type: ATTR_INTS,
            ..Default::default()
        }
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            i: v,
            r#type: ATTR_INT,
            ..Default::default()
        }
    }

    fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            s: v.as_bytes().to_vec(),
            r#type: ATTR_STRING,
            ..Default::default()
        }
    }

    fn weights(name: &str, dims: &[i64], value: f32) -> TensorProto {
        let n: i64 = dims.iter().product();
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: FLOAT,
            raw_data: (0..n).flat_map(|_| value.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn node(op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: vec![format!("{name}_out")],
            name: name.into(),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        }
    }

    /// A model: input `x` [n, 2, h, w] -> a 3x3 convolution (2 -> 2 channels, weights 0.5,
    /// bias 1) -> `tail` nodes; the last node's output is the graph output.
    fn model(tail: Vec<NodeProto>) -> Model {
        let conv = node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
        );
        let out = tail
            .last()
            .map_or_else(|| "conv_out".to_owned(), |n| n.output[0].clone());
        let mut nodes = vec![conv];
        nodes.extend(tail);
        let proto = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(GraphProto {
                node: nodes,
                name: "test".into(),
                initializer: vec![weights("w", &[2, 2, 3, 3], 0.5), weights("b", &[2], 1.0)],
                input: vec![ValueInfoProto { name: "x".into() }],
                output: vec![ValueInfoProto { name: out }],
            }),
        };
        Model::from_bytes("test.onnx", &prost::Message::encode_to_vec(&proto)).unwrap()
    }

    #[test]
    fn a_small_graph_runs_with_fused_relu_and_the_right_values() {
        let m = model(vec![node("Relu", "relu", &["conv_out"], vec![])]);
        let plan = Plan::new(&m, &[1, 2, 3, 3]).unwrap();
        assert_eq!(plan.steps.len(), 1, "Relu fused: {:?}", plan.steps);
        let x = vec![1.0f32; 18];
        let out = crate::twin::graph::run(&plan, &x, &mut Default::default()).unwrap();
        // Centre: 2 channels x 9 taps x 0.5 + 1 = 10; corner: 2 x 4 x 0.5 + 1 = 5.
        assert_eq!(out[0].dims, vec![1, 2, 3, 3]);
        assert_eq!(out[0].data[4], 10.0);
        assert_eq!(out[0].data[0], 5.0);
        assert_eq!(out[0].data[9 + 4], 10.0);
    }

    #[test]
    fn unsupported_operators_and_attributes_name_the_node() {
        let cases: Vec<(NodeProto, &str)> = vec![
            (
                node("Softmax", "soft", &["conv_out"], vec![]),
                "operator Softmax",
            ),
            (
                node(
                    "Resize",
                    "up",
                    &["conv_out", "", "scales"],
                    vec![string("mode", "linear")],
                ),
                "only nearest, asymmetric, floor",
            ),
            (
                node("Add", "add", &["conv_out", "b"], vec![]),
                "is a constant",
            ),
            (
                node(
                    "MaxPool",
                    "pool",
                    &["conv_out"],
                    vec![ints("kernel_shape", &[2, 2]), int("ceil_mode", 1)],
                ),
                "ceil_mode",
            ),
            (
                node("Relu", "relu", &["missing"], vec![]),
                "not defined before it",
            ),
        ];
        for (n, want) in cases {
            let label = format!("{} node '{}'", n.op_type, n.name);
            let m = model(vec![n]);
            let e = Plan::new(&m, &[1, 2, 4, 4]).unwrap_err().to_string();
            assert!(e.contains(&label) && e.contains(want), "{e}");
            assert!(e.contains("test.onnx"), "{e}");
        }
        // Dilation is refused at the convolution itself.
        let mut m = model(vec![]);
        if let Some(Attr::Ints(v)) = m.nodes[0].attrs.get_mut("pads") {
            v.clear();
            v.extend([1, 1, 1, 1]);
        }
        m.nodes[0]
            .attrs
            .insert("dilations".into(), Attr::Ints(vec![2, 2]));
        let e = Plan::new(&m, &[1, 2, 8, 8]).unwrap_err().to_string();
        assert!(
            e.contains("Conv node 'conv'") && e.contains("dilation"),
            "{e}"
        );
    }

    #[test]
    fn slots_are_reused_and_never_read_and_written_by_one_step() {
        // conv -> relu (fused) -> 4 more element-wise steps: a chain of values, two slots
        // (plus the input and the output) suffice.
        let tail = vec![
            node("Sigmoid", "s1", &["conv_out"], vec![]),
            node("Sigmoid", "s2", &["s1_out"], vec![]),
            node("Sigmoid", "s3", &["s2_out"], vec![]),
            node("Sigmoid", "s4", &["s3_out"], vec![]),
        ];
        let m = model(tail);
        let plan = Plan::new(&m, &[2, 2, 5, 5]).unwrap();
        assert_eq!(plan.steps.len(), 5);
        assert!(plan.slots.len() <= 3, "{:?}", plan.slots);
        for s in &plan.steps {
            assert!(!s.inputs().contains(&s.output()), "{s:?}");
            assert!(plan.slots[s.output()] >= s.output_len());
        }
        let x = vec![0.0f32; 100];
        let out = crate::twin::graph::run(&plan, &x, &mut Default::default()).unwrap();
        // conv of zeros = bias 1; sigmoid applied four times.
        let mut v = 1.0f32;
        for _ in 0..4 {
            v = 1.0 / (1.0 + (-v).exp());
        }
        assert!(
            out[0].data.iter().all(|&y| y == v),
            "{:?}",
            &out[0].data[..4]
        );
    }
}
