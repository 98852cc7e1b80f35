// Batched letterbox: every view of the batch resampled from its decoded RGB u8 image with
// fixed-point bilinear convolution (weights precomputed on the host, bit-exact with
// fast_image_resize), then written as a planar f32 detector input with channel order,
// normalisation and zero padding. Twin: kernels/src/twin/letterbox.rs.
//
// Per view, `desc` holds DESC_INTS ints:
//   0 src_w  1 src_h  2 content_w  3 content_h  4 input_w  5 input_h  6 x_first  7 temp_w
//   8 v_prec 9 v_window 10 v_pix_off 11 v_val_off 12 h_prec 13 h_window 14 h_pix_off 15 h_val_off
// and `offs` three 64-bit offsets: source bytes, temporary bytes, output floats.
// starts/sizes are indexed by pix_off + output pixel, values by val_off + pixel * window + i.

#define DESC_INTS 16

__device__ __forceinline__ unsigned char clip8(int acc, int prec) {
    int v = acc >> prec;
    return (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Pass 1: for every view, rows of the destination from the source columns
// x_first .. x_first + temp_w. Grid: (ceil(max temp_w * content_h / blockDim), views).
extern "C" __global__ void letterbox_vert(
    const unsigned char* __restrict__ src, const int* __restrict__ desc,
    const unsigned long long* __restrict__ offs, const int* __restrict__ starts,
    const int* __restrict__ sizes, const short* __restrict__ values,
    unsigned char* __restrict__ temp)
{
    const int view = blockIdx.y;
    const int* d = desc + view * DESC_INTS;
    const int src_w = d[0], dst_h = d[3], x_first = d[6], temp_w = d[7];
    const int prec = d[8], window = d[9], pix_off = d[10], val_off = d[11];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)temp_w * dst_h) return;
    const int y = (int)(i / temp_w), x = (int)(i % temp_w);
    const unsigned char* s = src + offs[view * 3 + 0];
    unsigned char* t = temp + offs[view * 3 + 1];
    const int start = starts[pix_off + y], size = sizes[pix_off + y];
    const short* w = values + val_off + (long long)y * window;
    int a0 = 1 << (prec - 1), a1 = a0, a2 = a0;
    for (int k = 0; k < size; ++k) {
        const unsigned char* p = s + ((long long)(start + k) * src_w + x_first + x) * 3;
        const int wk = w[k];
        a0 += (int)p[0] * wk;
        a1 += (int)p[1] * wk;
        a2 += (int)p[2] * wk;
    }
    unsigned char* o = t + ((long long)y * temp_w + x) * 3;
    o[0] = clip8(a0, prec);
    o[1] = clip8(a1, prec);
    o[2] = clip8(a2, prec);
}

// Pass 2: columns of the destination from the temporary image, written planar with the
// channel order (bgr != 0: planes B, G, R) and (v - mean) / std; padding is 0.
// Grid: (ceil(max input_w * input_h / blockDim), views).
extern "C" __global__ void letterbox_horiz(
    const unsigned char* __restrict__ temp, const int* __restrict__ desc,
    const unsigned long long* __restrict__ offs, const int* __restrict__ starts,
    const int* __restrict__ sizes, const short* __restrict__ values,
    int bgr, float mean, float std_dev, float* __restrict__ out)
{
    const int view = blockIdx.y;
    const int* d = desc + view * DESC_INTS;
    const int cw = d[2], ch = d[3], iw = d[4], ih = d[5], temp_w = d[7];
    const int prec = d[12], window = d[13], pix_off = d[14], val_off = d[15];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long plane = (long long)iw * ih;
    if (i >= plane) return;
    const int y = (int)(i / iw), x = (int)(i % iw);
    float* o = out + offs[view * 3 + 2];
    if (x >= cw || y >= ch) {
        o[i] = 0.0f;
        o[plane + i] = 0.0f;
        o[2 * plane + i] = 0.0f;
        return;
    }
    const unsigned char* t = temp + offs[view * 3 + 1] + (long long)y * temp_w * 3;
    const int start = starts[pix_off + x], size = sizes[pix_off + x];
    const short* w = values + val_off + (long long)x * window;
    int a0 = 1 << (prec - 1), a1 = a0, a2 = a0;
    for (int k = 0; k < size; ++k) {
        const unsigned char* p = t + (start + k) * 3;
        const int wk = w[k];
        a0 += (int)p[0] * wk;
        a1 += (int)p[1] * wk;
        a2 += (int)p[2] * wk;
    }
    const float r = (float)clip8(a0, prec), g = (float)clip8(a1, prec), b = (float)clip8(a2, prec);
    const float c0 = bgr ? b : r, c2 = bgr ? r : b;
    o[i] = (c0 - mean) / std_dev;
    o[plane + i] = (g - mean) / std_dev;
    o[2 * plane + i] = (c2 - mean) / std_dev;
}
