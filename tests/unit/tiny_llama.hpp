#pragma once
// Test helpers: tiny random Llama checkpoints in llama2.c's file format, a naive
// double-precision reference forward pass.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace tiny_llama {

namespace fs = std::filesystem;
using ropekit::test::TempDir;

struct TinyShape {
    int dim = 16, hidden = 24, layers = 2, heads = 4, kv_heads = 2, vocab = 11, seq_len = 8;
    bool shared = true;
};

// Random weights in llama2.c's file order, kept in memory for the reference.
struct TinyCheckpoint {
    TinyShape s;
    std::vector<float> emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, wcls;
};

inline TinyCheckpoint make_tiny(const TinyShape& s, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    auto fill = [&](std::size_t n, float offset = 0.0f) {
        std::vector<float> v(n);
        for (auto& x : v) x = offset + normal(rng);
        return v;
    };
    const std::size_t d = static_cast<std::size_t>(s.dim), L = static_cast<std::size_t>(s.layers),
                      hd = d / static_cast<std::size_t>(s.heads),
                      kv = hd * static_cast<std::size_t>(s.kv_heads),
                      h = static_cast<std::size_t>(s.hidden), V = static_cast<std::size_t>(s.vocab);
    TinyCheckpoint c{s,
                     fill(V * d),
                     fill(L * d, 1.0f),
                     fill(L * d * d),
                     fill(L * kv * d),
                     fill(L * kv * d),
                     fill(L * d * d),
                     fill(L * d, 1.0f),
                     fill(L * h * d),
                     fill(L * d * h),
                     fill(L * h * d),
                     fill(d, 1.0f),
                     {}};
    c.wcls = s.shared ? c.emb : fill(V * d);
    return c;
}

inline void write_tiny(const TinyCheckpoint& c, const std::string& path,
                       std::size_t drop_bytes = 0) {
    std::string bytes;
    auto put = [&](const void* p, std::size_t n) { bytes.append(static_cast<const char*>(p), n); };
    const int header[7] = {c.s.dim,    c.s.hidden,   c.s.layers,
                           c.s.heads,  c.s.kv_heads, c.s.shared ? c.s.vocab : -c.s.vocab,
                           c.s.seq_len};
    put(header, sizeof header);
    for (const auto* v : {&c.emb, &c.rms_att, &c.wq, &c.wk, &c.wv, &c.wo, &c.rms_ffn, &c.w1, &c.w2,
                          &c.w3, &c.rms_final}) {
        put(v->data(), v->size() * sizeof(float));
    }
    const std::vector<float> freq(static_cast<std::size_t>(c.s.seq_len * c.s.dim / c.s.heads),
                                  123.0f);  // legacy tables: must be skipped, never used
    put(freq.data(), freq.size() * sizeof(float));
    if (!c.s.shared) put(c.wcls.data(), c.wcls.size() * sizeof(float));
    bytes.resize(bytes.size() - drop_bytes);
    std::ofstream(path, std::ios::binary) << bytes;
}

// Token-by-token forward in double, straight from llama2.c's description: returns the logits of
// every position, [T][vocab].
inline std::vector<std::vector<double>> reference_logits(const TinyCheckpoint& c,
                                                         const std::vector<std::int64_t>& ids) {
    const int d = c.s.dim, hd = d / c.s.heads, kv = hd * c.s.kv_heads, hid = c.s.hidden;
    const int group = c.s.heads / c.s.kv_heads;
    auto matvec = [](const float* w, const std::vector<double>& x, int out) {
        std::vector<double> y(static_cast<std::size_t>(out), 0.0);
        for (int i = 0; i < out; ++i) {
            for (std::size_t j = 0; j < x.size(); ++j) y[i] += w[i * x.size() + j] * x[j];
        }
        return y;
    };
    auto norm = [&](const std::vector<double>& x, const float* w) {
        double ss = 0;
        for (double v : x) ss += v * v;
        const double inv = 1.0 / std::sqrt(ss / d + 1e-5);
        std::vector<double> y(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) y[i] = w[i] * x[i] * inv;
        return y;
    };
    auto rope = [&](std::vector<double>& v, int pos) {
        for (std::size_t i = 0; i < v.size(); i += 2) {
            const int within = static_cast<int>(i) % hd;
            const double angle = pos / std::pow(10000.0, static_cast<double>(within) / hd);
            const double a = v[i], b = v[i + 1];
            v[i] = a * std::cos(angle) - b * std::sin(angle);
            v[i + 1] = a * std::sin(angle) + b * std::cos(angle);
        }
    };
    const std::size_t T = ids.size();
    std::vector<std::vector<std::vector<double>>> kc(c.s.layers), vc(c.s.layers);
    std::vector<std::vector<double>> out;
    for (std::size_t t = 0; t < T; ++t) {
        std::vector<double> x(c.emb.begin() + ids[t] * d, c.emb.begin() + (ids[t] + 1) * d);
        for (int l = 0; l < c.s.layers; ++l) {
            auto xb = norm(x, &c.rms_att[l * d]);
            auto q = matvec(&c.wq[l * d * d], xb, d);
            auto k = matvec(&c.wk[l * kv * d], xb, kv);
            auto v = matvec(&c.wv[l * kv * d], xb, kv);
            rope(q, static_cast<int>(t));
            rope(k, static_cast<int>(t));
            kc[l].push_back(k);
            vc[l].push_back(v);
            std::vector<double> att(d, 0.0);
            for (int h = 0; h < c.s.heads; ++h) {
                const int g = h / group;
                std::vector<double> s(t + 1);
                double peak = -1e300;
                for (std::size_t j = 0; j <= t; ++j) {
                    for (int i = 0; i < hd; ++i) s[j] += q[h * hd + i] * kc[l][j][g * hd + i];
                    s[j] /= std::sqrt(static_cast<double>(hd));
                    peak = std::max(peak, s[j]);
                }
                double sum = 0;
                for (auto& e : s) sum += (e = std::exp(e - peak));
                for (std::size_t j = 0; j <= t; ++j) {
                    for (int i = 0; i < hd; ++i)
                        att[h * hd + i] += s[j] / sum * vc[l][j][g * hd + i];
                }
            }
            auto o = matvec(&c.wo[l * d * d], att, d);
            for (int i = 0; i < d; ++i) x[i] += o[i];
            xb = norm(x, &c.rms_ffn[l * d]);
            auto a = matvec(&c.w1[l * hid * d], xb, hid);
            auto b = matvec(&c.w3[l * hid * d], xb, hid);
            for (int i = 0; i < hid; ++i) a[i] = a[i] / (1 + std::exp(-a[i])) * b[i];
            auto f = matvec(&c.w2[l * d * hid], a, d);
            for (int i = 0; i < d; ++i) x[i] += f[i];
        }
        out.push_back(matvec(c.wcls.data(), norm(x, c.rms_final.data()), c.s.vocab));
    }
    return out;
}

}  // namespace tiny_llama
