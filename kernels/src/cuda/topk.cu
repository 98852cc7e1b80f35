// Exact top-k per row of a score matrix (queries x gallery, row-major, from cuBLAS SGEMM):
// best first, ties by the lower index, NaN never wins; identical to the twin
// (kernels/src/twin/search.rs). One block of TOPK_THREADS threads per row: each thread keeps
// a sorted list of its k best over a strided share of the row, then k rounds of a block-wide
// arg-max pick the winners. Rows with fewer than k columns yield fewer hits (index -1).

#define MAX_K 64
#define TOPK_THREADS 128

__device__ __forceinline__ bool better(float s, unsigned j, float hs, unsigned hj) {
    return s > hs || (s == hs && j < hj);
}

extern "C" __global__ void topk_rows(const float* __restrict__ scores, int cols, int k,
                                     int* __restrict__ out_index, float* __restrict__ out_score)
{
    __shared__ float sh_s[TOPK_THREADS];
    __shared__ unsigned sh_j[TOPK_THREADS];
    __shared__ int sh_t[TOPK_THREADS];
    const int row = blockIdx.x;
    const int tid = threadIdx.x;
    const float* s = scores + (long long)row * cols;
    float ls[MAX_K];
    unsigned lj[MAX_K];
    int n = 0;
    for (int j = tid; j < cols; j += TOPK_THREADS) {
        const float v = s[j];
        if (v != v) continue;  // NaN
        if (n == k && !better(v, (unsigned)j, ls[k - 1], lj[k - 1])) continue;
        int pos = n < k ? n : k - 1;
        while (pos > 0 && better(v, (unsigned)j, ls[pos - 1], lj[pos - 1])) {
            ls[pos] = ls[pos - 1];
            lj[pos] = lj[pos - 1];
            --pos;
        }
        ls[pos] = v;
        lj[pos] = (unsigned)j;
        if (n < k) ++n;
    }
    int head = 0;
    for (int r = 0; r < k; ++r) {
        const bool has = head < n;
        sh_s[tid] = has ? ls[head] : 0.0f;
        sh_j[tid] = has ? lj[head] : 0xffffffffu;
        sh_t[tid] = has ? tid : -1;
        __syncthreads();
        for (int stride = TOPK_THREADS / 2; stride > 0; stride >>= 1) {
            if (tid < stride) {
                const int o = tid + stride;
                const bool take = sh_t[o] >= 0 &&
                    (sh_t[tid] < 0 || better(sh_s[o], sh_j[o], sh_s[tid], sh_j[tid]));
                if (take) {
                    sh_s[tid] = sh_s[o];
                    sh_j[tid] = sh_j[o];
                    sh_t[tid] = sh_t[o];
                }
            }
            __syncthreads();
        }
        const int winner = sh_t[0];
        if (tid == 0) {
            out_index[(long long)row * k + r] = winner >= 0 ? (int)sh_j[0] : -1;
            out_score[(long long)row * k + r] = winner >= 0 ? sh_s[0] : 0.0f;
        }
        if (tid == winner) ++head;
        __syncthreads();
    }
}
