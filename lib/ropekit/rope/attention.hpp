#pragma once
// Causal attention of one (batch, head) from post-RoPE queries and keys, with OpenBLAS.
#include <cstddef>

namespace ropekit {

// scores[i*T + j] = scale * q_i . k_j for j <= i, and -inf above the diagonal (masked).
// q and k are T rows of `dim` floats, `q_stride` / `k_stride` floats apart (so a head can be
// read straight out of a [pos, head, dim] block). One SGEMM.
void causal_scores(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                   std::size_t tokens, std::size_t dim, float scale, float* scores);

// In place: each row i of a [T, T] score matrix becomes softmax over j <= i (exponent sums in
// double); entries above the diagonal become 0.
void causal_softmax(float* scores, std::size_t tokens);

// max |v| over `count` rows of `dim` floats, `stride` apart (finite inputs).
float max_abs(const float* rows, std::size_t stride, std::size_t count, std::size_t dim);

// Whether the float SGEMM of causal_scores is safe for these rows: |scale| * max|q| * max|k| *
// dim <= 2^100, so no score can overflow float and the softmax stays finite.
bool float_scores_fit(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                      std::size_t tokens, std::size_t dim, double scale);
// The same scores in double (DGEMM), finite for any finite q and k; -inf above the diagonal.
void causal_scores_f64(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                       std::size_t tokens, std::size_t dim, double scale, double* scores);
// Softmax of double scores into a float pattern (0 above the diagonal).
void causal_softmax_f64(const double* scores, std::size_t tokens, float* pattern);
// The [T, T] pattern for any finite q and k: causal_scores + causal_softmax when
// float_scores_fit (the fast path, as before), the double versions otherwise.
void causal_attention(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                      std::size_t tokens, std::size_t dim, double scale, float* pattern);
// The same, for a caller that already has max|q| and max|k| over these rows (finding them is a
// pass over q and k per call).
void causal_attention(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                      std::size_t tokens, std::size_t dim, double scale, float* pattern,
                      float max_abs_q, float max_abs_k);

// The same for the last `queries` of `keys` positions (incremental decoding with a key cache):
// query row i sits at position keys - queries + i and sees keys j <= that position.
// scores is [queries, keys]. queries == keys is the square case above.
void causal_scores(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                   std::size_t queries, std::size_t keys, std::size_t dim, float scale,
                   float* scores);
void causal_softmax(float* scores, std::size_t queries, std::size_t keys);

}  // namespace ropekit
