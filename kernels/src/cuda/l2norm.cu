// L2 normalisation of embedding rows, one thread per row summing in index order so that it
// agrees with the twin (kernels/src/twin/search.rs) bit for bit. Writes the original norms.
extern "C" __global__ void l2_normalize_rows(float* __restrict__ rows, int n_rows, int dim,
                                             float* __restrict__ norms)
{
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n_rows) return;
    float* v = rows + (long long)r * dim;
    float sum = 0.0f;
    for (int i = 0; i < dim; ++i) sum += v[i] * v[i];
    const float norm = sqrtf(sum);
    if (norm > 0.0f) {
        for (int i = 0; i < dim; ++i) v[i] = v[i] / norm;
    }
    norms[r] = norm;
}
