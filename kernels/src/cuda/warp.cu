// Alignment of every face of a batch: the 112x112 crop sampled through the crop -> image
// similarity (bilinear, zero outside the image), rounded to u8 (interleaved RGB, for the
// sharpness measure) and written as the embedder input (planar RGB, (x - 127.5) / 127.5).
// Compiled with --fmad=false so that it agrees with the twin (kernels/src/twin/warp.rs)
// bit for bit.
//
// Per face: `src_off` (byte offset of its image in `src`), `dims` (width, height) and
// `affine` (a, b, tx, ty): x = a*u - b*v + tx, y = b*u + a*v + ty.
// Grid: (ceil(112*112 / blockDim), faces).

#define CROP 112

extern "C" __global__ void warp_faces(
    const unsigned char* __restrict__ src, const unsigned long long* __restrict__ src_off,
    const int* __restrict__ dims, const float* __restrict__ affine,
    unsigned char* __restrict__ rgb, float* __restrict__ input)
{
    const int face = blockIdx.y;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= CROP * CROP) return;
    const int u = i % CROP, v = i / CROP;
    const int w = dims[face * 2], h = dims[face * 2 + 1];
    const float a = affine[face * 4], b = affine[face * 4 + 1];
    const float tx = affine[face * 4 + 2], ty = affine[face * 4 + 3];
    const unsigned char* img = src + src_off[face];
    const float sx = a * (float)u - b * (float)v + tx;
    const float sy = b * (float)u + a * (float)v + ty;
    const float fx0 = floorf(sx), fy0 = floorf(sy);
    const float fx = sx - fx0, fy = sy - fy0;
    const long long x0 = (long long)fx0, y0 = (long long)fy0;
    float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f;
    for (int dy = 0; dy < 2; ++dy) {
        const float wy = dy == 0 ? 1.0f - fy : fy;
        const long long yy = y0 + dy;
        if (yy < 0 || yy >= h || wy == 0.0f) continue;
        for (int dx = 0; dx < 2; ++dx) {
            const float wx = dx == 0 ? 1.0f - fx : fx;
            const long long xx = x0 + dx;
            if (xx < 0 || xx >= w || wx == 0.0f) continue;
            const unsigned char* p = img + (yy * w + xx) * 3;
            const float wgt = wx * wy;
            acc0 += wgt * (float)p[0];
            acc1 += wgt * (float)p[1];
            acc2 += wgt * (float)p[2];
        }
    }
    const float r = fminf(fmaxf(roundf(acc0), 0.0f), 255.0f);
    const float g = fminf(fmaxf(roundf(acc1), 0.0f), 255.0f);
    const float bl = fminf(fmaxf(roundf(acc2), 0.0f), 255.0f);
    unsigned char* o = rgb + ((long long)face * CROP * CROP + i) * 3;
    o[0] = (unsigned char)r;
    o[1] = (unsigned char)g;
    o[2] = (unsigned char)bl;
    float* in = input + (long long)face * 3 * CROP * CROP;
    in[i] = ((float)o[0] - 127.5f) / 127.5f;
    in[CROP * CROP + i] = ((float)o[1] - 127.5f) / 127.5f;
    in[2 * CROP * CROP + i] = ((float)o[2] - 127.5f) / 127.5f;
}
