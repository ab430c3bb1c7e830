// sw_ranking on the GPU: from the dot products of a batch of queries with the arena's prompt rows
// (a cuBLAS GEMM, done by CuPy) to each query's similarity-weighted counts per (tier pair row,
// outcome) slot, which the CPU core's Elo fit turns into win rates (SwArena.score_counts).
//
// The math is the CPU core's (csrc/sw.hpp, SwArena::prompt_fit), step for step:
//   sim_p   = dot_p * row_factor_p * query_factor          (cosine similarity)
//   r_p     = sim_p / max_p sim_p                          (error if max sim == 0)
//   w_p     = 10 ** (r_p - max_p r_p)                      (the common factor cancels in the fit)
//   y[slot] = sum over arena entries (p, slot, count) of w_p * count
// in double precision whatever the precision of the dot products.
//
// One block per query. Three passes over the query's row of dot products (max sim, max r, the
// weighted sum into a shared-memory copy of its slots with shared double atomics), then one write
// of the slots. Compiled at run time by NVRTC (CuPy RawModule); `nvcc -ptx -arch=sm_90` in CI.

#ifndef SW_COUNTS_BLOCK
#define SW_COUNTS_BLOCK 256
#endif

// -inf without <math.h> (NVRTC has no INFINITY macro).
#define SW_NEG_INF __longlong_as_double(0xfff0000000000000ULL)

template <class T>
__device__ __forceinline__ double as_double(T v) {
  return static_cast<double>(v);
}

// Block-wide max of one double per thread; every thread gets the result.
__device__ double block_max(double v, double* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, offset));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (blockDim.x + 31) / 32 ? scratch[lane] : SW_NEG_INF;
    for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, offset));
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const double out = scratch[0];
  __syncthreads();  // scratch is reused by the next reduction
  return out;
}

template <class T>
__device__ void weighted_counts(const T* __restrict__ dots, long long ld_dots, const double* __restrict__ row_factor,
                                const double* __restrict__ query_factor, const unsigned long long* __restrict__ entry_begin,
                                const unsigned int* __restrict__ entry_slot, const double* __restrict__ entry_count,
                                int n_prompts, int slots, double* __restrict__ counts, int* __restrict__ status) {
  extern __shared__ double shared[];  // [slots] counts, then 32 doubles of reduction scratch
  double* y = shared;
  double* scratch = shared + slots;
  const int q = blockIdx.x;
  const T* row = dots + q * ld_dots;
  const double qf = query_factor[q];

  for (int s = threadIdx.x; s < slots; s += blockDim.x) y[s] = 0.0;

  double local = SW_NEG_INF;
  for (int p = threadIdx.x; p < n_prompts; p += blockDim.x) local = fmax(local, as_double(row[p]) * row_factor[p] * qf);
  const double max_sim = block_max(local, scratch);
  if (max_sim == 0.0) {  // the weights 10 ** (sim / max_sim) are undefined: the host raises
    if (threadIdx.x == 0) status[q] = 1;
    return;
  }
  local = SW_NEG_INF;
  for (int p = threadIdx.x; p < n_prompts; p += blockDim.x) local = fmax(local, as_double(row[p]) * row_factor[p] * qf / max_sim);
  const double r_max = block_max(local, scratch);

  const double ln10 = 2.302585092994045684;
  for (int p = threadIdx.x; p < n_prompts; p += blockDim.x) {
    const double r = as_double(row[p]) * row_factor[p] * qf / max_sim;
    const double w = exp(ln10 * (r - r_max));
    for (unsigned long long e = entry_begin[p]; e < entry_begin[p + 1]; ++e) atomicAdd(&y[entry_slot[e]], w * entry_count[e]);
  }
  __syncthreads();
  for (int s = threadIdx.x; s < slots; s += blockDim.x) counts[(long long)q * slots + s] = y[s];
  if (threadIdx.x == 0) status[q] = 0;
}

extern "C" __global__ void __launch_bounds__(SW_COUNTS_BLOCK)
sw_counts_f32(const float* dots, long long ld_dots, const double* row_factor, const double* query_factor,
              const unsigned long long* entry_begin, const unsigned int* entry_slot, const double* entry_count,
              int n_prompts, int slots, double* counts, int* status) {
  weighted_counts(dots, ld_dots, row_factor, query_factor, entry_begin, entry_slot, entry_count, n_prompts, slots,
                  counts, status);
}

extern "C" __global__ void __launch_bounds__(SW_COUNTS_BLOCK)
sw_counts_f64(const double* dots, long long ld_dots, const double* row_factor, const double* query_factor,
              const unsigned long long* entry_begin, const unsigned int* entry_slot, const double* entry_count,
              int n_prompts, int slots, double* counts, int* status) {
  weighted_counts(dots, ld_dots, row_factor, query_factor, entry_begin, entry_slot, entry_count, n_prompts, slots,
                  counts, status);
}
