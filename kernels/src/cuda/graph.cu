// The steps of our graph executor (kernels/src/graph): one kernel per step kind, NCHW f32.
// Each follows its CPU twin (kernels/src/twin/graph.rs) operation by operation: compiled with
// --fmad=false, the convolution, pooling, resize, add, activation and transpose results are
// bit-for-bit the twin's; the sigmoid uses expf (within 1 ulp-ish of the twin's exp).
//
// Activation codes: 0 identity, 1 relu, 2 clip(lo, hi).

__device__ __forceinline__ float activate(float x, int act, float lo, float hi) {
    if (act == 1) return fmaxf(x, 0.0f);
    if (act == 2) return fminf(fmaxf(x, lo), hi);
    return x;
}

// One thread per output element; bias first, then input channel, kernel row, kernel column,
// skipping taps outside the input (the twin's order).
extern "C" __global__ void conv2d(
    const float* __restrict__ in, const float* __restrict__ w, const float* __restrict__ bias,
    float* __restrict__ out,
    int n, int c_in, int h_in, int w_in, int c_out, int h_out, int w_out,
    int kh, int kw, int sh, int sw, int pt, int pl, int group,
    int act, float lo, float hi)
{
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)n * c_out * h_out * w_out;
    if (idx >= total) return;
    int ox = (int)(idx % w_out);
    long long t = idx / w_out;
    int oy = (int)(t % h_out);
    t /= h_out;
    int co = (int)(t % c_out);
    int img = (int)(t / c_out);
    int cin_g = c_in / group;
    int cout_g = c_out / group;
    int g = co / cout_g;
    const float* wk = w + (long long)co * cin_g * kh * kw;
    float acc = bias[co];
    for (int ci = 0; ci < cin_g; ++ci) {
        const float* plane = in + ((long long)img * c_in + (long long)g * cin_g + ci) * h_in * w_in;
        for (int ky = 0; ky < kh; ++ky) {
            int iy = oy * sh + ky - pt;
            if (iy < 0 || iy >= h_in) continue;
            const float* row = plane + (long long)iy * w_in;
            for (int kx = 0; kx < kw; ++kx) {
                int ix = ox * sw + kx - pl;
                if (ix < 0 || ix >= w_in) continue;
                acc = acc + wk[(ci * kh + ky) * kw + kx] * row[ix];
            }
        }
    }
    out[idx] = activate(acc, act, lo, hi);
}

extern "C" __global__ void max_pool(
    const float* __restrict__ in, float* __restrict__ out,
    int planes, int h_in, int w_in, int h_out, int w_out,
    int kh, int kw, int sh, int sw, int pt, int pl)
{
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)planes * h_out * w_out;
    if (idx >= total) return;
    int ox = (int)(idx % w_out);
    long long t = idx / w_out;
    int oy = (int)(t % h_out);
    int p = (int)(t / h_out);
    const float* plane = in + (long long)p * h_in * w_in;
    float m = __int_as_float(0xff800000);  // -inf
    for (int ky = 0; ky < kh; ++ky) {
        int iy = oy * sh + ky - pt;
        if (iy < 0 || iy >= h_in) continue;
        for (int kx = 0; kx < kw; ++kx) {
            int ix = ox * sw + kx - pl;
            if (ix < 0 || ix >= w_in) continue;
            m = fmaxf(m, plane[(long long)iy * w_in + ix]);
        }
    }
    out[idx] = m;
}

__device__ __forceinline__ int nearest_floor(int dst, float scale, int len_in) {
    float x = floorf((float)dst / scale);
    int i = x > 0.0f ? (int)x : 0;
    return i < len_in - 1 ? i : len_in - 1;
}

extern "C" __global__ void resize_nearest(
    const float* __restrict__ in, float* __restrict__ out,
    int planes, int h_in, int w_in, int h_out, int w_out, float sy, float sx)
{
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)planes * h_out * w_out;
    if (idx >= total) return;
    int ox = (int)(idx % w_out);
    long long t = idx / w_out;
    int oy = (int)(t % h_out);
    int p = (int)(t / h_out);
    int iy = nearest_floor(oy, sy, h_in);
    int ix = nearest_floor(ox, sx, w_in);
    out[idx] = in[((long long)p * h_in + iy) * w_in + ix];
}

extern "C" __global__ void add_act(
    const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
    long long len, int act, float lo, float hi)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) out[i] = activate(a[i] + b[i], act, lo, hi);
}

extern "C" __global__ void act(
    const float* __restrict__ in, float* __restrict__ out, long long len, int act, float lo, float hi)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) out[i] = activate(in[i], act, lo, hi);
}

extern "C" __global__ void sigmoid(const float* __restrict__ in, float* __restrict__ out, long long len)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) out[i] = 1.0f / (1.0f + expf(-in[i]));
}

// meta: rank, then the output dims (6), then for each output axis the input stride (6).
extern "C" __global__ void transpose(
    const float* __restrict__ in, float* __restrict__ out, long long len, const long long* __restrict__ meta)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    int rank = (int)meta[0];
    long long rest = i;
    long long off = 0;
    for (int a = rank - 1; a >= 0; --a) {
        long long d = meta[1 + a];
        off += (rest % d) * meta[7 + a];
        rest /= d;
    }
    out[i] = in[off];
}

// After a 1x1 convolution computed as a cuBLAS GEMM: bias of the element's channel, then the
// activation (`out` is NCHW, `hw` pixels per plane).
extern "C" __global__ void bias_act(
    float* __restrict__ out, const float* __restrict__ bias, long long len, int c_out, long long hw,
    int act, float lo, float hi)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    int c = (int)((i / hw) % c_out);
    out[i] = activate(out[i] + bias[c], act, lo, hi);
}
