#include "ropekit/analysis/key_construction.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/hdf5/row_blocks.hpp"
#include "ropekit/rope/attention.hpp"

namespace ropekit {

std::vector<std::size_t> parse_chunk_spec(const std::string& spec, std::size_t chunk_count) {
    auto bad = [&](const std::string& why) {
        return usage_error(fmt::format("--chunks: '{}': {}", spec, why));
    };
    auto number = [&](const std::string& text) -> std::size_t {
        if (text.empty() || text.size() > 9 ||
            text.find_first_not_of("0123456789") != std::string::npos) {
            throw bad(
                "expected 1-based chunk numbers (1 = highest frequency) like 1-4,9, or "
                "top:K, bottom:K, all");
        }
        return static_cast<std::size_t>(std::stoul(text));
    };
    std::vector<std::size_t> out;
    if (spec == "all") {
        for (std::size_t c = 0; c < chunk_count; ++c) out.push_back(c);
        return out;
    }
    for (const char* side : {"top:", "bottom:"}) {
        const std::string prefix = side;
        if (spec.rfind(prefix, 0) == 0) {
            const std::size_t count = number(spec.substr(prefix.size()));
            if (count == 0 || count > chunk_count) {
                throw bad(fmt::format("expected 1 to {} chunks", chunk_count));
            }
            const std::size_t first = prefix == "top:" ? 0 : chunk_count - count;
            for (std::size_t c = first; c < first + count; ++c) out.push_back(c);
            return out;
        }
    }
    for (const std::string& item : split_list(spec)) {
        const std::size_t dash = item.find('-');
        const std::size_t lo = number(item.substr(0, dash));
        const std::size_t hi = dash == std::string::npos ? lo : number(item.substr(dash + 1));
        if (lo == 0 || hi < lo || hi > chunk_count) {
            throw bad(fmt::format("chunks are numbered 1 (highest frequency) to {}", chunk_count));
        }
        for (std::size_t c = lo; c <= hi; ++c) out.push_back(c - 1);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

QueryChoice choose_query(std::size_t head_dim, std::optional<std::uint64_t> seed,
                         const std::string& file_spec, std::size_t row) {
    QueryChoice q;
    q.values.assign(head_dim, 1.0);
    q.source = "ones";
    if (seed) {
        std::mt19937_64 rng(*seed);
        std::normal_distribution<double> normal;
        for (double& x : q.values) x = normal(rng);
        q.source = fmt::format("gaussian seed {}", *seed);
    } else if (!file_spec.empty()) {
        const std::size_t colon = file_spec.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == file_spec.size()) {
            throw usage_error("--query: expected FILE:DATASET, e.g. dump.h5:blocks.0.attn.hook_q");
        }
        q.file = file_spec.substr(0, colon);
        const H5Input in = H5Input::open(q.file);
        q.history = in.history();
        q.values = read_row(in, file_spec.substr(colon + 1), row, head_dim);
        q.source = fmt::format("{} row {}", file_spec, row);
    }
    return q;
}

void keep_chunks(std::vector<double>& v, const Schedule& s,
                 const std::vector<std::size_t>& chunks) {
    for (std::size_t c = 0; c < s.frequency_count(); ++c) {
        if (std::binary_search(chunks.begin(), chunks.end(), c)) continue;
        const auto [a, b] = s.chunk_dims(c);
        v[a] = v[b] = 0.0;
    }
}

std::vector<double> key_for_offset(std::vector<double> q, const Schedule& s, std::int64_t offset) {
    Schedule pure = s;
    pure.attention_factor = 1.0;
    rotate(q.data(), pure, static_cast<double>(offset));
    return q;
}

KeyConstruction construct_key(const std::vector<double>& query, const Schedule& s,
                              std::int64_t offset, std::size_t tokens) {
    if (offset < 0 || static_cast<std::size_t>(offset) >= tokens) {
        throw usage_error(
            fmt::format("--offset must be in [0, --tokens) = [0, {}), got {}", tokens, offset));
    }
    KeyConstruction k;
    k.query = query;
    k.key = key_for_offset(query, s, offset);
    k.target_offset = offset;
    k.offsets = offset_range(static_cast<std::int64_t>(tokens));
    k.logit = offset_curve(k.query.data(), k.key.data(), s, k.offsets);
    k.peak = find_peak(k.logit);
    return k;
}

void write_key_construction(H5Output& out, const KeyConstruction& k, const Schedule& s,
                            double theta, const std::string& chunks, const std::string& source) {
    auto vector = [&](const char* name, const std::vector<double>& v, const char* what) {
        Tensor<double> t({v.size()});
        t.data = v;
        out.write(name, t, {"dim"});
        out.set_attr(name, "description", std::string(what));
    };
    vector("query", k.query, "q (pre-RoPE), restricted to --chunks");
    vector("key", k.key, "k = R^offset q: chunk c of q rotated by +offset * g_c");
    Tensor<std::int64_t> offsets({k.offsets.size()});
    offsets.data = k.offsets;
    out.write("offset", offsets, {"offset"}, "tokens (key sits this many tokens before the query)");
    Tensor<double> logit({k.logit.size()});
    logit.data = k.logit;
    out.write("logit", logit, {"offset"}, "q^T R^(-offset) k (no 1/sqrt(d))");
    out.set_attr("/", "target_offset", k.target_offset);
    out.set_attr("/", "argmax_offset", k.offsets[k.peak.argmax]);
    out.set_attr("/", "peak", k.peak.peak);
    out.set_attr("/", "runner_up", k.peak.runner_up);
    out.set_attr("/", "margin", k.peak.margin);
    out.set_attr("/", "d", static_cast<std::int64_t>(s.head_dim));
    out.set_attr("/", "theta", theta);
    out.set_attr("/", "rope_layout", layout_name(s.layout));
    out.set_attr("/", "chunks", chunks);
    out.set_attr("/", "query_source", source);
}

HeadSpec parse_head_spec(const std::string& spec) {
    if (spec == "diagonal") return {"diagonal", 0};
    if (spec == "previous") return {"previous", 1};
    if (spec.rfind("offset:", 0) == 0) {
        const std::string n = spec.substr(7);
        if (!n.empty() && n.size() < 10 && n.find_first_not_of("0123456789") == std::string::npos) {
            return {"offset", static_cast<std::int64_t>(std::stoll(n))};
        }
    }
    throw usage_error(fmt::format(
        "--head: '{}': expected diagonal, previous or offset:R (R >= 0 tokens back)", spec));
}

double last_row_weight(const std::vector<double>& unit_logits, std::size_t offset, double scale) {
    double total = 0.0;
    for (double l : unit_logits) total += std::exp(scale * (l - unit_logits[offset]));
    return 1.0 / total;
}

HeadScale minimal_head_scale(const std::vector<double>& unit_logits, std::size_t offset,
                             double epsilon) {
    if (offset >= unit_logits.size()) {
        throw usage_error(fmt::format("the head's offset {} needs more than {} tokens", offset,
                                      unit_logits.size()));
    }
    if (!(epsilon > 0 && epsilon < 1)) throw usage_error("--epsilon must be in (0, 1)");
    HeadScale h;
    const double peak = unit_logits[offset];
    double runner = -HUGE_VAL;
    for (std::size_t o = 0; o < unit_logits.size(); ++o) {
        if (o != offset) runner = std::max(runner, unit_logits[o]);
    }
    h.runner_up = unit_logits.size() > 1 ? runner / peak : 0.0;
    if (unit_logits.size() > 1 && !(runner < peak)) {
        throw data_error("", "",
                         fmt::format("no scale works: the logit at another offset ({:.6g}) "
                                     "reaches the target's ({:.6g})",
                                     runner, peak));
    }
    const double target = 1.0 - epsilon;
    const double n = static_cast<double>(unit_logits.size());
    h.scale_bound = n > 1 ? std::log((n - 1) * (1 - epsilon) / epsilon) / (peak - runner) : 0.0;
    double lo = 0.0, hi = 1.0;
    while (last_row_weight(unit_logits, offset, hi) < target) {
        lo = hi;
        hi *= 2;
        if (hi > 1e15) throw data_error("", "", "no finite scale reaches 1 - epsilon");
    }
    for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; ++i) {
        const double mid = 0.5 * (lo + hi);
        (last_row_weight(unit_logits, offset, mid) >= target ? hi : lo) = mid;
    }
    h.scale_min = hi;
    h.alpha_at_min = last_row_weight(unit_logits, offset, hi);
    return h;
}

ConstructedHead build_head(const std::vector<double>& psi, const Schedule& s,
                           const HeadOptions& options) {
    const std::size_t n = options.tokens, d = s.head_dim;
    const auto offset = static_cast<std::size_t>(options.head.offset);
    double norm2 = 0;
    for (double x : psi) norm2 += x * x;
    if (!(norm2 > 0)) throw usage_error("the query is zero in every chosen chunk");
    std::vector<double> unit(psi);
    for (double& x : unit) x /= std::sqrt(norm2);
    const std::vector<double> unit_key = key_for_offset(unit, s, options.head.offset);
    const auto unit_logits =
        offset_curve(unit.data(), unit_key.data(), s, offset_range(static_cast<std::int64_t>(n)));
    ConstructedHead h;
    h.tokens = n;
    h.head_dim = d;
    h.offset = options.head.offset;
    ConstructedHeadResult& r = h.result;
    r.scale = minimal_head_scale(unit_logits, offset, options.epsilon);
    r.attn_scale = options.model_scale ? 1.0 / std::sqrt(static_cast<double>(d)) : 1.0;
    const double stored_scale = r.scale.scale_min * (1.0 + options.headroom);
    r.psi_norm2 = stored_scale / r.attn_scale;
    r.min_alpha = last_row_weight(unit_logits, offset, stored_scale);
    const double length = std::sqrt(r.psi_norm2);
    for (auto* t : {&h.q, &h.k, &h.rot_q, &h.rot_k}) *t = Tensor<float>({1, n, 1, d});
    for (std::size_t i = 0; i < n; ++i) {
        float* qi = h.q.ptr() + i * d;
        float* ki = h.k.ptr() + i * d;
        for (std::size_t c = 0; c < d; ++c) {
            qi[c] = static_cast<float>(unit[c] * length);
            ki[c] = static_cast<float>(unit_key[c] * length);
        }
        std::copy(qi, qi + d, h.rot_q.ptr() + i * d);
        std::copy(ki, ki + d, h.rot_k.ptr() + i * d);
        rotate(h.rot_q.ptr() + i * d, s, static_cast<double>(i));
        rotate(h.rot_k.ptr() + i * d, s, static_cast<double>(i));
    }
    return h;
}

double head_pattern_rows(const ConstructedHead& h, std::size_t row_begin, std::size_t row_end,
                         float* scores, float* pattern) {
    const std::size_t n = h.tokens, d = h.head_dim, rows = row_end - row_begin;
    const auto offset = static_cast<std::size_t>(h.offset);
    // Row block i sees keys 0..row_end-1: a [rows x row_end] problem, padded to N columns.
    std::vector<float> block(rows * row_end);
    causal_scores(h.rot_q.ptr() + row_begin * d, d, h.rot_k.ptr(), d, rows, row_end, d,
                  static_cast<float>(h.result.attn_scale), block.data());
    for (std::size_t r = 0; r < rows; ++r) {
        std::copy(block.begin() + static_cast<std::ptrdiff_t>(r * row_end),
                  block.begin() + static_cast<std::ptrdiff_t>((r + 1) * row_end), scores + r * n);
        std::fill(scores + r * n + row_end, scores + (r + 1) * n,
                  -std::numeric_limits<float>::infinity());
    }
    causal_softmax(block.data(), rows, row_end);
    double min_alpha = 1.0;
    for (std::size_t r = 0; r < rows; ++r) {
        std::copy(block.begin() + static_cast<std::ptrdiff_t>(r * row_end),
                  block.begin() + static_cast<std::ptrdiff_t>((r + 1) * row_end), pattern + r * n);
        std::fill(pattern + r * n + row_end, pattern + (r + 1) * n, 0.0f);
        const std::size_t i = row_begin + r;
        if (i >= offset) {
            min_alpha = std::min(min_alpha, static_cast<double>(pattern[r * n + i - offset]));
        }
    }
    return min_alpha;
}

double head_pattern(const ConstructedHead& h, float* scores, float* pattern) {
    return head_pattern_rows(h, 0, h.tokens, scores, pattern);
}

void write_head_dump(H5Output& out, ConstructedHead& h, const Schedule& s, double theta,
                     const HeadOptions& options) {
    out.write(hook_dataset(0, Hook::q), h.q, hook_axes(Hook::q));
    out.write(hook_dataset(0, Hook::k), h.k, hook_axes(Hook::k));
    out.write(hook_dataset(0, Hook::rot_q), h.rot_q, hook_axes(Hook::rot_q));
    out.write(hook_dataset(0, Hook::rot_k), h.rot_k, hook_axes(Hook::rot_k));
    if (options.write_pattern) {
        const std::size_t n = h.tokens;
        const std::string scores_name = hook_dataset(0, Hook::scores);
        const std::string pattern_name = hook_dataset(0, Hook::pattern);
        out.create_dataset(scores_name, {1, 1, n, n}, DType::f32, hook_axes(Hook::scores), "logit");
        out.create_dataset(pattern_name, {1, 1, n, n}, DType::f32, hook_axes(Hook::pattern),
                           "probability");
        const std::size_t block = std::max<std::size_t>(1, (std::size_t{1} << 20) / n);
        std::vector<float> scores(block * n), pattern(block * n);
        h.result.min_alpha = 1.0;
        for (std::size_t r0 = 0; r0 < n; r0 += block) {
            const std::size_t r1 = std::min(n, r0 + block);
            h.result.min_alpha = std::min(
                h.result.min_alpha, head_pattern_rows(h, r0, r1, scores.data(), pattern.data()));
            out.write_slab(scores_name, {0, 0, r0, 0}, {1, 1, r1 - r0, n}, scores.data());
            out.write_slab(pattern_name, {0, 0, r0, 0}, {1, 1, r1 - r0, n}, pattern.data());
        }
    }
    DumpAttributes attrs;
    attrs.rope_theta = theta;
    attrs.rope_layout = s.layout;
    attrs.bos = 0;
    attrs.model = "construct-key";
    attrs.attn_scale = h.result.attn_scale;
    write_dump_attributes(out, attrs);
    const ConstructedHeadResult& r = h.result;
    out.set_attr("/", "scale", std::string(options.model_scale ? "sqrt" : "none"));
    out.set_attr("/", "head_kind", options.head.kind);
    out.set_attr("/", "head_offset", options.head.offset);
    out.set_attr("/", "epsilon", options.epsilon);
    out.set_attr("/", "scale_min", r.scale.scale_min);
    out.set_attr("/", "scale_bound", r.scale.scale_bound);
    out.set_attr("/", "runner_up_ratio", r.scale.runner_up);
    out.set_attr("/", "psi_norm2", r.psi_norm2);
    out.set_attr("/", "min_alpha", r.min_alpha);
    out.set_attr("/", "d", static_cast<std::int64_t>(h.head_dim));
}

}  // namespace ropekit
