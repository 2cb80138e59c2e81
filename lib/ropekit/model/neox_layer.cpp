// The steps of a gpt_neox (Pythia) decoder layer that Llama's lacks: LayerNorm with a bias, the
// fused query_key_value interleaved per head, the GELU MLP with biases, and attention and MLP
// reading the same input (use_parallel_residual), as transformers' modeling_gpt_neox.py runs them.
#include <algorithm>
#include <cmath>

#include "ropekit/model/decoder_layer_internal.hpp"

namespace ropekit::decoder {

namespace {

// v <- v·Φ(v), GELU with the exact normal CDF (transformers' "gelu", torch's default).
void gelu(float* v, std::size_t n) {
    constexpr float kInvSqrt2 = 0.70710678118654752f;
    for (std::size_t i = 0; i < n; ++i) v[i] = 0.5f * v[i] * (1.0f + std::erf(v[i] * kInvSqrt2));
}

// x += w2 . gelu(w3 . in + b3) + b2 for every row of the call.
void add_gelu_mlp(const LlamaLayerWeights& w, const float* in, ForwardWorkspace& ws) {
    const std::size_t rows = ws.shape.rows();
    project(in, rows, w.w3, ws.up.data());
    gelu(ws.up.data(), ws.up.size());
    project(ws.up.data(), rows, w.w2, ws.x.data(), 1.0f);
}

}  // namespace

void layer_norm(const float* x, const float* weight, const float* bias, std::size_t rows,
                std::size_t dim, double eps, float* out) {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = x + r * dim;
        double sum = 0.0;
        for (std::size_t i = 0; i < dim; ++i) sum += row[i];
        const double mean = sum / static_cast<double>(dim);
        double squares = 0.0;
        for (std::size_t i = 0; i < dim; ++i) squares += (row[i] - mean) * (row[i] - mean);
        const double inverse = 1.0 / std::sqrt(squares / static_cast<double>(dim) + eps);
        for (std::size_t i = 0; i < dim; ++i) {
            out[r * dim + i] =
                static_cast<float>(weight[i] * ((row[i] - mean) * inverse) + bias[i]);
        }
    }
}

void normalize(const LlamaConfig& c, const float* x, const float* weight, const float* bias,
               std::size_t rows, float* out) {
    if (c.layer_norm) {
        layer_norm(x, weight, bias, rows, c.dim, c.norm_eps, out);
    } else {
        rms_norm(x, weight, rows, c.dim, c.norm_eps, out);
    }
}

void project_qkv_per_head(const LlamaConfig& c, const LlamaLayerWeights& w, ForwardWorkspace& ws) {
    const std::size_t rows = ws.shape.rows(), D = c.head_dim, fused = 3 * ws.qdim;
    std::vector<float> qkv(rows * fused);
    project(ws.xb.data(), rows, w.qkv_per_head, qkv.data());
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t h = 0; h < c.n_heads; ++h) {
            const float* head = &qkv[r * fused + h * 3 * D];
            std::copy_n(head, D, &ws.q[r * ws.qdim + h * D]);
            std::copy_n(head + D, D, &ws.k[r * ws.kvdim + h * D]);
            std::copy_n(head + 2 * D, D, &ws.v[r * ws.kvdim + h * D]);
        }
    }
}

void neox_layer(const LlamaConfig& c, const DecoderLayer& layer, const ForwardOptions& options,
                ForwardWorkspace& ws) {
    const LlamaLayerWeights& w = *layer.weights;
    const std::size_t rows = ws.shape.rows();
    if (!c.parallel_residual) {
        attention_block(c, layer, options, ws);
        normalize(c, ws.x.data(), w.rms_ffn, w.ffn_norm_bias, rows, ws.xb.data());
        add_gelu_mlp(w, ws.xb.data(), ws);
        return;
    }
    // The MLP reads the layer's input: normalised before attention adds to x.
    std::vector<float> mlp_in(rows * c.dim);
    normalize(c, ws.x.data(), w.rms_ffn, w.ffn_norm_bias, rows, mlp_in.data());
    attention_block(c, layer, options, ws);
    add_gelu_mlp(w, mlp_in.data(), ws);
}

}  // namespace ropekit::decoder
