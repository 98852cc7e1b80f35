// YuNet output decoding and per-image NMS on the device. Twin: kernels/src/twin/detect.rs.
// Compiled with --fmad=false so that boxes agree with the twin up to expf's last bit.
//
// yunet_decode: one thread per (view, cell of any level) of one detector call (all views of
// a call share input_w x input_h). Outputs are ONNX Runtime's, batch-major:
// cls_l / obj_l [views, cells_l], bbox_l [views, cells_l, 4], kps_l [views, cells_l, 10]
// for the strides 8, 16, 32. A candidate (score >= threshold) is mapped to image
// coordinates with its view's geometry, dropped when it touches an interior tile edge or is
// at most 1 px wide/high, and appended (atomically) to `cand`:
//   cand_f[c * CAND_FLOATS + ...] = x1 y1 x2 y2, 5 x (x, y), score
//   cand_key[c] = global_view << 20 | level << 18 | cell;   cand_img[c] = image
// Geometry per view (GEOM_FLOATS floats): x0 y0 scale content_w content_h interior_l
// interior_t interior_r interior_b img_w img_h; `view_img[v]` its image, `view_key[v]` its
// index in the whole batch (for the key).
//
// nms_per_image: one block per image; gathers that image's candidates (at most
// NMS_MAX_CANDS, else it reports overflow and the host runs the twin), sorts them by score,
// best first, ties by key (bitonic sort in shared memory), then keeps greedily those whose
// IoU with every kept face is at most iou_threshold and that are not 80 % inside a kept face.

#define CAND_FLOATS 15
#define GEOM_FLOATS 11
#define NMS_MAX_CANDS 2048
#define NMS_THREADS 256
#define NMS_MAX_KEEP 512

extern "C" __global__ void yunet_decode(
    const float* __restrict__ cls8, const float* __restrict__ cls16, const float* __restrict__ cls32,
    const float* __restrict__ obj8, const float* __restrict__ obj16, const float* __restrict__ obj32,
    const float* __restrict__ box8, const float* __restrict__ box16, const float* __restrict__ box32,
    const float* __restrict__ kps8, const float* __restrict__ kps16, const float* __restrict__ kps32,
    int n_views, int input_w, int input_h, float threshold,
    const float* __restrict__ geom, const int* __restrict__ view_img, const int* __restrict__ view_key,
    float* __restrict__ cand_f, unsigned* __restrict__ cand_key, int* __restrict__ cand_img,
    unsigned* __restrict__ count, int capacity)
{
    const int c8 = (input_w / 8) * (input_h / 8);
    const int c16 = (input_w / 16) * (input_h / 16);
    const int c32 = (input_w / 32) * (input_h / 32);
    const int per_view = c8 + c16 + c32;
    const long long gi = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gi >= (long long)per_view * n_views) return;
    const int view = (int)(gi / per_view);
    int cell = (int)(gi % per_view);
    int level, cells, stride;
    const float *cls, *obj, *box, *kps;
    if (cell < c8) {
        level = 0; cells = c8; stride = 8; cls = cls8; obj = obj8; box = box8; kps = kps8;
    } else if (cell < c8 + c16) {
        cell -= c8;
        level = 1; cells = c16; stride = 16; cls = cls16; obj = obj16; box = box16; kps = kps16;
    } else {
        cell -= c8 + c16;
        level = 2; cells = c32; stride = 32; cls = cls32; obj = obj32; box = box32; kps = kps32;
    }
    const long long idx = (long long)view * cells + cell;
    const float c = fminf(fmaxf(cls[idx], 0.0f), 1.0f);
    const float o = fminf(fmaxf(obj[idx], 0.0f), 1.0f);
    const float score = sqrtf(c * o);
    if (score < threshold) return;  // as the CPU: a NaN score is not dropped here
    const int cols = input_w / stride;
    const float s = (float)stride;
    const float col = (float)(cell % cols), row = (float)(cell / cols);
    const float* b = box + idx * 4;
    const float* k = kps + idx * 10;
    const float cx = (col + b[0]) * s, cy = (row + b[1]) * s;
    const float w = expf(b[2]) * s, h = expf(b[3]) * s;
    float bb[4] = {cx - w / 2.0f, cy - h / 2.0f, cx + w / 2.0f, cy + h / 2.0f};
    // Map to the image.
    const float* g = geom + view * GEOM_FLOATS;
    const float margin = 2.0f;
    if ((g[5] != 0.0f && bb[0] <= margin) || (g[6] != 0.0f && bb[1] <= margin) ||
        (g[7] != 0.0f && bb[2] >= g[3] - margin) || (g[8] != 0.0f && bb[3] >= g[4] - margin))
        return;
    const float inv = 1.0f / g[2];
    const float iw = g[9], ih = g[10];
    bb[0] = fminf(fmaxf(g[0] + bb[0] * inv, 0.0f), iw);
    bb[1] = fminf(fmaxf(g[1] + bb[1] * inv, 0.0f), ih);
    bb[2] = fminf(fmaxf(g[0] + bb[2] * inv, 0.0f), iw);
    bb[3] = fminf(fmaxf(g[1] + bb[3] * inv, 0.0f), ih);
    if (!(bb[2] - bb[0] > 1.0f && bb[3] - bb[1] > 1.0f)) return;
    const unsigned slot = atomicAdd(count, 1u);
    if (slot >= (unsigned)capacity) return;  // the host sees count > capacity
    float* out = cand_f + (long long)slot * CAND_FLOATS;
    out[0] = bb[0]; out[1] = bb[1]; out[2] = bb[2]; out[3] = bb[3];
    for (int i = 0; i < 5; ++i) {
        out[4 + 2 * i] = g[0] + ((col + k[2 * i]) * s) * inv;
        out[5 + 2 * i] = g[1] + ((row + k[2 * i + 1]) * s) * inv;
    }
    out[14] = score;
    cand_key[slot] = ((unsigned)view_key[view] << 20) | ((unsigned)level << 18) | (unsigned)cell;
    cand_img[slot] = view_img[view];
}

__device__ __forceinline__ float iou4(const float* a, const float* b) {
    const float ix = fmaxf(fminf(a[2], b[2]) - fmaxf(a[0], b[0]), 0.0f);
    const float iy = fmaxf(fminf(a[3], b[3]) - fmaxf(a[1], b[1]), 0.0f);
    const float inter = ix * iy;
    const float aa = fmaxf(a[2] - a[0], 0.0f) * fmaxf(a[3] - a[1], 0.0f);
    const float ab = fmaxf(b[2] - b[0], 0.0f) * fmaxf(b[3] - b[1], 0.0f);
    const float uni = aa + ab - inter;
    return uni <= 0.0f ? 0.0f : inter / uni;
}

__device__ __forceinline__ bool contained4(const float* inner, const float* outer) {
    const float ix = fmaxf(fminf(inner[2], outer[2]) - fmaxf(inner[0], outer[0]), 0.0f);
    const float iy = fmaxf(fminf(inner[3], outer[3]) - fmaxf(inner[1], outer[1]), 0.0f);
    const float area = fmaxf(inner[2] - inner[0], 0.0f) * fmaxf(inner[3] - inner[1], 0.0f);
    return area > 0.0f && ix * iy / area > 0.8f;
}

// Whether candidate a ranks after candidate b (lower score, or equal score and larger key).
__device__ __forceinline__ bool after(const float* f, const unsigned* key, int a, int b) {
    const float sa = f[(long long)a * CAND_FLOATS + 14], sb = f[(long long)b * CAND_FLOATS + 14];
    return sa < sb || (sa == sb && key[a] > key[b]);
}

// Output per image: up to max_keep faces of CAND_FLOATS floats at out_f[(img * max_keep + i)
// * CAND_FLOATS], their count in out_n[img] (-1: more than NMS_MAX_CANDS candidates).
extern "C" __global__ void nms_per_image(
    const float* __restrict__ cand_f, const unsigned* __restrict__ cand_key,
    const int* __restrict__ cand_img, int n_cand, float iou_threshold, int max_keep,
    float* __restrict__ out_f, int* __restrict__ out_n)
{
    __shared__ int list[NMS_MAX_CANDS];
    __shared__ int n;
    __shared__ int kept[NMS_MAX_KEEP];
    const int img = blockIdx.x, tid = threadIdx.x;
    if (tid == 0) n = 0;
    __syncthreads();
    for (int c = tid; c < n_cand; c += NMS_THREADS) {
        if (cand_img[c] == img) {
            const int slot = atomicAdd(&n, 1);
            if (slot < NMS_MAX_CANDS) list[slot] = c;
        }
    }
    __syncthreads();
    const int total = n;
    if (total > NMS_MAX_CANDS) {
        if (tid == 0) out_n[img] = -1;
        return;
    }
    int size = 1;
    while (size < total) size <<= 1;
    for (int i = total + tid; i < size; i += NMS_THREADS) list[i] = -1;
    __syncthreads();
    // Bitonic sort, best first; -1 (padding) last.
    for (int k = 2; k <= size; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = tid; i < size; i += NMS_THREADS) {
                const int p = i ^ j;
                if (p > i) {
                    const int a = list[i], b = list[p];
                    const bool a_after_b = a < 0 ? b >= 0 : (b >= 0 && after(cand_f, cand_key, a, b));
                    const bool b_after_a = b < 0 ? a >= 0 : (a >= 0 && after(cand_f, cand_key, b, a));
                    const bool up = (i & k) == 0;
                    if ((up && a_after_b) || (!up && b_after_a)) {
                        list[i] = b;
                        list[p] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
    if (tid == 0) {
        const int keep_max = max_keep < NMS_MAX_KEEP ? max_keep : NMS_MAX_KEEP;
        int nk = 0;
        for (int i = 0; i < total && nk < keep_max; ++i) {
            const float* d = cand_f + (long long)list[i] * CAND_FLOATS;
            bool ok = true;
            for (int q = 0; q < nk && ok; ++q) {
                const float* kb = cand_f + (long long)kept[q] * CAND_FLOATS;
                ok = iou4(kb, d) <= iou_threshold && !contained4(d, kb);
            }
            if (ok) kept[nk++] = list[i];
        }
        for (int q = 0; q < nk; ++q) {
            const float* src = cand_f + (long long)kept[q] * CAND_FLOATS;
            float* dst = out_f + ((long long)img * max_keep + q) * CAND_FLOATS;
            for (int f = 0; f < CAND_FLOATS; ++f) dst[f] = src[f];
        }
        out_n[img] = nk;
    }
}
