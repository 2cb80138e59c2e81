#include "ropekit/analysis/positional_heads.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/rope/attention.hpp"

namespace ropekit {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The first query that has a key r tokens back (not the BOS key when it is excluded).
std::size_t first_query(std::size_t r, bool exclude_bos) {
    return exclude_bos ? r + 1 : r;
}

// Per head, summed over sequences.
struct HeadAccumulator {
    std::vector<double> mass_sum, mass_min;
    double prev_mul = 0, prev_abs = 0;
    std::vector<std::vector<double>> chunk_logit;  // [offset][chunk], summed over queries
    std::vector<double> logit;                     // [offset], whole dot product
};

// Where the vectors come from, for qk mode and frequency attribution.
struct VectorSource {
    bool available = false;
    Hook q = Hook::rot_q, k = Hook::rot_k;
    bool rotate = false;  // pre-RoPE: rotate by the schedule first
    Schedule schedule;
};

VectorSource find_vectors(const DumpReader& dump, std::size_t layer, bool required) {
    VectorSource v;
    if (dump.has(layer, Hook::rot_q) && dump.has(layer, Hook::rot_k)) {
        v.available = true;
    } else if (dump.has(layer, Hook::q) && dump.has(layer, Hook::k)) {
        v.q = Hook::q;
        v.k = Hook::k;
        v.rotate = true;
        v.available = required || dump.attributes().rope_theta.has_value();
    } else if (required) {
        const Hook missing = dump.has(layer, Hook::rot_q) ? Hook::rot_k : Hook::rot_q;
        throw data_error(dump.input().name(), dump.dataset(layer, missing),
                         fmt::format("no such dataset (nor pre-RoPE {} and {})",
                                     dump.dataset(layer, Hook::q), dump.dataset(layer, Hook::k)));
    }
    if (v.available) {
        v.schedule = dump.schedule(dump.vector_shape(layer, v.q).dim, v.rotate);
    }
    return v;
}

// Rotates sequence `batch` of a pre-RoPE hook by the schedule. A chunk whose norm is beyond the
// float range (values near 3.4e38) cannot be stored rotated: that is an error naming where.
void rotate_all(Tensor<float>& slab, const Schedule& s, const DumpReader& dump, std::size_t layer,
                Hook hook, std::size_t batch) {
    const std::size_t T = slab.shape[0], H = slab.shape[1], D = slab.shape[2];
    for (std::size_t t = 0; t < T; ++t)
        rotate(&slab.data[t * H * D], H, D, s, static_cast<double>(t));
    for (std::size_t i = 0; i < slab.size(); ++i) {
        if (!std::isfinite(slab.data[i])) {
            throw data_error(dump.input().name(), dump.dataset(layer, hook),
                             fmt::format("rotating batch {}, pos {}, head {} by the schedule "
                                         "overflows float32 (a chunk norm above 3.4e38)",
                                         batch, i / (H * D), i / D % H));
        }
    }
}

void check_rows_sum_to_one(const Tensor<float>& a, const std::string& file,
                           const std::string& dataset, std::size_t batch, std::size_t head) {
    const std::size_t T = a.shape[0];
    for (std::size_t i = 0; i < T; ++i) {
        double sum = 0;
        for (std::size_t j = 0; j <= i; ++j) sum += a.data[i * T + j];
        if (std::abs(sum - 1.0) > 0.02) {
            throw data_error(file, dataset,
                             fmt::format("row {} of batch {}, head {} sums to {:.4g}, expected a "
                                         "softmax pattern summing to 1 (scores given as pattern?)",
                                         i, batch, head, sum));
        }
    }
}

}  // namespace

double previous_token_score_mul(const float* a, std::size_t T, bool exclude_bos,
                                bool exclude_current_token) {
    double total = 0, hit = 0;
    for (std::size_t i = 0; i < T; ++i) {
        for (std::size_t j = 0; j <= i; ++j) {
            if ((exclude_bos && j == 0) || (exclude_current_token && j == i)) continue;
            total += a[i * T + j];
            if (j + 1 == i) hit += a[i * T + j];
        }
    }
    return total > 0 ? hit / total : kNaN;
}

double previous_token_score_abs(const float* a, std::size_t T, bool exclude_bos,
                                bool exclude_current_token) {
    double error = 0;
    for (std::size_t i = 0; i < T; ++i) {
        for (std::size_t j = 0; j <= i; ++j) {
            if ((exclude_bos && j == 0) || (exclude_current_token && j == i)) continue;
            const double detect = j + 1 == i ? 1.0 : 0.0;
            error += std::abs(a[i * T + j] - detect);
        }
    }
    return 1.0 - error / static_cast<double>(T);
}

SequenceStats sequence_stats(const float* a, std::size_t T, const PositionalOptions& o) {
    SequenceStats s;
    s.offset_mass.assign(o.max_offset + 1, kNaN);
    for (std::size_t r = 0; r <= o.max_offset; ++r) {
        const std::size_t first = first_query(r, o.exclude_bos);
        if (first >= T) continue;
        double sum = 0;
        for (std::size_t i = first; i < T; ++i) {
            const float* row = a + i * T;
            double denominator = 1.0;
            if (o.exclude_bos) {
                denominator = 0;
                for (std::size_t j = 1; j <= i; ++j) denominator += row[j];
            }
            sum += denominator > 1e-30 ? row[i - r] / denominator : 0.0;
        }
        s.offset_mass[r] = sum / static_cast<double>(T - first);
    }
    s.prev_mul = previous_token_score_mul(a, T, o.exclude_bos, o.exclude_current_token);
    s.prev_abs = previous_token_score_abs(a, T, o.exclude_bos, o.exclude_current_token);
    return s;
}

std::optional<double> logit_scale_choice(const std::string& choice,
                                         const DumpAttributes& attributes) {
    if (choice == "auto") return attributes.attn_scale;
    if (choice == "sqrt") return std::nullopt;
    if (choice == "none") return 1.0;
    throw usage_error("--scale: expected auto, sqrt or none, got '" + choice + "'");
}

PositionalHeads find_positional_heads(const DumpReader& dump, const PositionalOptions& options,
                                      const std::function<void(const std::string&)>& progress) {
    const std::string& file = dump.input().name();
    const bool from_pattern = options.from == HeadSource::pattern;
    std::vector<std::size_t> available = dump.layers(from_pattern ? Hook::pattern : Hook::rot_q);
    if (!from_pattern && available.empty()) available = dump.layers(Hook::q);
    if (available.empty()) {
        throw data_error(file, dump.dataset(0, from_pattern ? Hook::pattern : Hook::rot_q),
                         "no layers found (see --name, --from)");
    }
    PositionalHeads r;
    r.options = options;
    if (options.layers.empty()) {
        r.layers = available;
    } else {
        for (std::size_t i : options.layers) r.layers.push_back(available[i]);
    }
    const std::size_t K = options.max_offset;
    for (std::size_t row = 0; row < r.layers.size(); ++row) {
        const std::size_t layer = r.layers[row];
        const VectorSource vectors = find_vectors(dump, layer, !from_pattern);
        std::size_t B = 0, T = 0, H = 0, group = 1, KV = 0, D = 0;
        if (from_pattern) {
            const PatternShape ps = dump.pattern_shape(layer, Hook::pattern);
            if (ps.queries != ps.keys) {
                throw data_error(file, dump.dataset(layer, Hook::pattern),
                                 fmt::format("{} queries and {} keys: expected a square pattern",
                                             ps.queries, ps.keys));
            }
            B = ps.batch, T = ps.queries, H = ps.heads;
        }
        if (vectors.available) {
            group = dump.check_query_key(layer, vectors.q, vectors.k);
            const VectorShape qs = dump.vector_shape(layer, vectors.q);
            KV = dump.vector_shape(layer, vectors.k).heads;
            D = qs.dim;
            if (from_pattern && (qs.batch != B || qs.pos != T || qs.heads != H)) {
                throw data_error(file, dump.dataset(layer, vectors.q),
                                 fmt::format("[{} sequences, {} positions, {} heads] does not "
                                             "match {}'s [{}, {}, {}]",
                                             qs.batch, qs.pos, qs.heads,
                                             dump.dataset(layer, Hook::pattern), B, T, H));
            }
            B = qs.batch, T = qs.pos, H = qs.heads;
        }
        if (row == 0) {
            r.heads = H;
            r.sequences = B;
            r.tokens = T;
            r.attributed = vectors.available;
            r.frequencies = vectors.available ? vectors.schedule.rotary_dim / 2 : 0;
            r.source = from_pattern
                           ? hook_name(Hook::pattern)
                           : fmt::format("{}/{}{}", hook_name(vectors.q), hook_name(vectors.k),
                                         vectors.rotate ? " rotated by the schedule" : "");
        } else if (H != r.heads || vectors.available != r.attributed) {
            throw data_error(file, dump.dataset(layer, from_pattern ? Hook::pattern : vectors.q),
                             fmt::format("{} heads, but layer {} has {}", H, r.layers[0], r.heads));
        }
        const std::size_t F = r.frequencies;
        std::vector<HeadAccumulator> acc(H);
        for (auto& a : acc) {
            a.mass_sum.assign(K + 1, 0.0);
            a.mass_min.assign(K + 1, std::numeric_limits<double>::infinity());
            if (r.attributed) {
                a.chunk_logit.assign(K + 1, std::vector<double>(F, 0.0));
                a.logit.assign(K + 1, 0.0);
            }
        }
        std::vector<Tensor<float>> pictures(H);
        Tensor<float> q, k;
        const float scale = static_cast<float>(
            options.logit_scale.value_or(1.0 / std::sqrt(static_cast<double>(D))));
        if (!from_pattern) r.logit_scale = scale;
        // One head of sequence b; `pattern` [T, T] and `dim_logit` [D] are the caller's scratch.
        const auto process_head = [&](std::size_t b, std::size_t h, Tensor<float>& pattern,
                                      std::vector<double>& dim_logit) {
            const float* qh = vectors.available ? &q.data[h * D] : nullptr;
            const float* kh = vectors.available ? &k.data[(h / group) * D] : nullptr;
            if (from_pattern) {
                dump.read_pattern(layer, Hook::pattern, b, h, pattern);
                check_rows_sum_to_one(pattern, file, dump.dataset(layer, Hook::pattern), b, h);
            } else {
                causal_attention(qh, H * D, kh, KV * D, T, D, scale, pattern.ptr());
            }
            const SequenceStats s = sequence_stats(pattern.ptr(), T, options);
            HeadAccumulator& a = acc[h];
            for (std::size_t o = 0; o <= K; ++o) {
                a.mass_sum[o] += s.offset_mass[o];  // NaN stays NaN: offset too long
                a.mass_min[o] = std::min(a.mass_min[o], s.offset_mass[o]);
            }
            a.prev_mul += s.prev_mul;
            a.prev_abs += s.prev_abs;
            if (b == 0) {
                const std::size_t n = std::min(T, options.picture_tokens);
                pictures[h] = Tensor<float>({n, n});
                for (std::size_t i = 0; i < n; ++i)
                    std::copy_n(&pattern.data[i * T], n, &pictures[h].data[i * n]);
            }
            if (!r.attributed) return;
            // Logit of query i at key i - o, chunk by chunk: (R^i q_i)^(c) . (R^j k_j)^(c).
            // Summed over queries per dimension first (a loop over d that vectorises), then
            // per chunk (its two dims) and in whole (every dim, unrotated ones included).
            for (std::size_t o = 0; o <= K; ++o) {
                std::fill(dim_logit.begin(), dim_logit.end(), 0.0);
                for (std::size_t i = first_query(o, options.exclude_bos); i < T; ++i) {
                    const float* qi = qh + i * H * D;
                    const float* kj = kh + (i - o) * KV * D;
                    for (std::size_t d = 0; d < D; ++d) dim_logit[d] += double(qi[d]) * kj[d];
                }
                for (std::size_t d = 0; d < D; ++d) a.logit[o] += dim_logit[d];
                for (std::size_t c = 0; c < F; ++c) {
                    const auto [x, y] = vectors.schedule.chunk_dims(c);
                    a.chunk_logit[o][c] += dim_logit[x] + dim_logit[y];
                }
            }
        };
        // Heads of a sequence run in parallel from q and k (each thread with its own [T, T]
        // block, OpenBLAS single-threaded inside, so results do not depend on --threads); read
        // from the file, they run in order (the HDF5 library is not thread-safe).
        const auto process_heads = [&](std::size_t b, std::size_t begin, std::size_t end) {
            Tensor<float> pattern({T, T});
            std::vector<double> dim_logit(D);
            for (std::size_t h = begin; h < end; ++h) process_head(b, h, pattern, dim_logit);
        };
        for (std::size_t b = 0; b < B; ++b) {
            if (vectors.available) {
                dump.read_vectors(layer, vectors.q, b, q);
                dump.read_vectors(layer, vectors.k, b, k);
                if (vectors.rotate) {
                    rotate_all(q, vectors.schedule, dump, layer, vectors.q, b);
                    rotate_all(k, vectors.schedule, dump, layer, vectors.k, b);
                }
            }
            if (from_pattern) {
                process_heads(b, 0, H);
            } else {
                const SingleThreadedBlas blas;
                parallel_for(
                    H, [&](std::size_t begin, std::size_t end) { process_heads(b, begin, end); });
            }
        }
        for (std::size_t h = 0; h < H; ++h) {
            HeadAccumulator& a = acc[h];
            HeadResult res;
            res.layer = layer;
            res.head = h;
            res.offset_mass.resize(K + 1);
            for (std::size_t o = 0; o <= K; ++o) res.offset_mass[o] = a.mass_sum[o] / double(B);
            double best = -1;
            for (std::size_t o = 0; o <= K; ++o) {
                if (res.offset_mass[o] > best) {  // NaN never wins; ties keep the smaller offset
                    best = res.offset_mass[o];
                    res.offset = o;
                }
            }
            res.mass = res.offset_mass[res.offset];
            res.min_mass = a.mass_min[res.offset];
            res.positional = res.min_mass >= 1.0 - options.epsilon;
            res.prev_mul = a.prev_mul / double(B);
            res.prev_abs = a.prev_abs / double(B);
            res.top_freq_share = kNaN;
            if (r.attributed) {
                const double total = a.logit[res.offset];
                res.frequency_share.resize(F);
                double top = 0;
                for (std::size_t c = 0; c < F; ++c) {
                    res.frequency_share[c] = a.chunk_logit[res.offset][c] / total;
                    if (c < std::max<std::size_t>(1, (F + 3) / 4)) top += res.frequency_share[c];
                }
                res.top_freq_share = top;
            }
            res.picture = std::move(pictures[h]);
            r.results.push_back(std::move(res));
        }
        if (progress) progress(fmt::format("layer {} ({}/{})", layer, row + 1, r.layers.size()));
    }
    return r;
}

std::string heads_table_tsv(const PositionalHeads& r) {
    std::string out =
        "layer\thead\toffset\tmass\tmin_mass\tpositional\tprev_mul\tprev_abs\ttop_freq_share\n";
    for (const HeadResult& h : r.results) {
        out += fmt::format(
            "{}\t{}\t{}\t{:.4f}\t{:.4f}\t{}\t{:.4f}\t{:.4f}\t{}\n", h.layer, h.head, h.offset,
            h.mass, h.min_mass, h.positional ? 1 : 0, h.prev_mul, h.prev_abs,
            std::isnan(h.top_freq_share) ? "nan" : fmt::format("{:.4f}", h.top_freq_share));
    }
    return out;
}

std::string heads_table_json(const PositionalHeads& r) {
    auto number = [](double v) {
        return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
    };
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const HeadResult& h : r.results) {
        rows.push_back({{"layer", h.layer},
                        {"head", h.head},
                        {"offset", h.offset},
                        {"mass", number(h.mass)},
                        {"min_mass", number(h.min_mass)},
                        {"positional", h.positional},
                        {"prev_mul", number(h.prev_mul)},
                        {"prev_abs", number(h.prev_abs)},
                        {"top_freq_share", number(h.top_freq_share)}});
    }
    return rows.dump(2) + "\n";
}

void write_positional_heads(H5Output& out, const PositionalHeads& r) {
    const std::size_t L = r.layers.size(), H = r.heads, K = r.options.max_offset + 1;
    Tensor<std::int64_t> layer({L}), offset({L, H}), positional({L, H});
    Tensor<double> mass({L, H}), min_mass({L, H}), prev_mul({L, H}), prev_abs({L, H}), top({L, H}),
        offset_mass({L, H, K}), shares({L, H, r.frequencies});
    for (std::size_t l = 0; l < L; ++l) layer.data[l] = static_cast<std::int64_t>(r.layers[l]);
    for (std::size_t i = 0; i < r.results.size(); ++i) {
        const HeadResult& h = r.results[i];
        offset.data[i] = static_cast<std::int64_t>(h.offset);
        positional.data[i] = h.positional ? 1 : 0;
        mass.data[i] = h.mass;
        min_mass.data[i] = h.min_mass;
        prev_mul.data[i] = h.prev_mul;
        prev_abs.data[i] = h.prev_abs;
        top.data[i] = h.top_freq_share;
        std::copy(h.offset_mass.begin(), h.offset_mass.end(), &offset_mass.data[i * K]);
        if (r.attributed)
            std::copy(h.frequency_share.begin(), h.frequency_share.end(),
                      &shares.data[i * r.frequencies]);
    }
    const std::vector<std::string> lh{"layer", "head"};
    out.write("layer", layer, {"layer"});
    out.write("offset", offset, lh, "tokens");
    out.write("mass", mass, lh, "probability");
    out.write("min_mass", min_mass, lh, "probability");
    out.write("positional", positional, lh);
    out.write("prev_mul", prev_mul, lh);
    out.write("prev_abs", prev_abs, lh);
    out.write("top_freq_share", top, lh);
    out.write("offset_mass", offset_mass, {"layer", "head", "relative_offset"}, "probability");
    if (r.attributed) out.write("frequency_share", shares, {"layer", "head", "freq"});
    out.set_attr("offset", "description", "dominant offset: 0 = diagonal, 1 = previous token");
    out.set_attr("mass", "description",
                 "mean over queries and sequences of the attention from query i to key i - offset");
    out.set_attr("min_mass", "description", "minimum over sequences of the per-sequence mean mass");
    out.set_attr("positional", "description", "1 if min_mass >= 1 - epsilon (Definition 5.1)");
    out.set_attr("prev_mul", "description",
                 "TransformerLens previous_token_head score, error_measure='mul'");
    out.set_attr("prev_abs", "description",
                 "TransformerLens previous_token_head score, error_measure='abs' (unrounded)");
    out.set_attr("top_freq_share", "description",
                 "share of the logit at the offset carried by the highest quarter of frequencies "
                 "(NaN without q and k)");
    const PositionalOptions& o = r.options;
    out.set_attr("/", "from", std::string(o.from == HeadSource::pattern ? "pattern" : "qk"));
    out.set_attr("/", "source", r.source);
    out.set_attr("/", "epsilon", o.epsilon);
    out.set_attr("/", "max_offset", static_cast<std::int64_t>(o.max_offset));
    if (o.from == HeadSource::qk) out.set_attr("/", "attn_scale", r.logit_scale);
    out.set_attr("/", "exclude_bos", static_cast<std::int64_t>(o.exclude_bos));
    out.set_attr("/", "exclude_current_token", static_cast<std::int64_t>(o.exclude_current_token));
    out.set_attr("/", "sequences", static_cast<std::int64_t>(r.sequences));
    out.set_attr("/", "tokens", static_cast<std::int64_t>(r.tokens));
}

Heatmap pattern_figure(const HeadResult& h, const std::string& source) {
    Heatmap m;
    m.rows = h.picture.shape[0];
    m.cols = h.picture.shape[1];
    m.values.assign(h.picture.data.begin(), h.picture.data.end());
    m.title = fmt::format("Layer {} head {}: {} head (offset {}, mass {:.3f})", h.layer, h.head,
                          h.offset == 0   ? "diagonal"
                          : h.offset == 1 ? "previous-token"
                                          : "positional",
                          h.offset, h.mass);
    m.x_label = "key position";
    m.y_label = "query position";
    m.color_label = "attention (" + source + ", sequence 0)";
    m.color_units = "probability";
    m.color_min = 0;
    m.color_max = 1;
    m.width = 640;
    m.height = 600;
    return m;
}

Heatmap mass_figure(const PositionalHeads& r) {
    Heatmap m;
    m.rows = r.layers.size();
    m.cols = r.heads;
    for (const HeadResult& h : r.results) m.values.push_back(h.mass);
    m.title = "Attention mass at each head's dominant offset";
    m.x_label = "head";
    m.y_label = "layer";
    for (std::size_t l : r.layers) m.y_tick_labels.push_back(std::to_string(l));
    m.color_label = "mass";
    m.color_units = "probability";
    m.color_min = 0;
    m.color_max = 1;
    return m;
}

}  // namespace ropekit
