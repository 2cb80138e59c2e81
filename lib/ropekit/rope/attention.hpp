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

// The same for the last `queries` of `keys` positions (incremental decoding with a key cache):
// query row i sits at position keys - queries + i and sees keys j <= that position.
// scores is [queries, keys]. queries == keys is the square case above.
void causal_scores(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                   std::size_t queries, std::size_t keys, std::size_t dim, float scale,
                   float* scores);
void causal_softmax(float* scores, std::size_t queries, std::size_t keys);

}  // namespace ropekit
