#include "ropekit/model/model_dump.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/model/token_ids.hpp"
#include "ropekit/model/token_nll.hpp"

namespace ropekit {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

Shape hook_shape(Hook hook, const LlamaConfig& c, std::size_t sequences, std::size_t tokens) {
    switch (hook) {
        case Hook::q:
        case Hook::rot_q:
            return {sequences, tokens, c.n_heads, c.head_dim};
        case Hook::k:
        case Hook::rot_k:
            return {sequences, tokens, c.n_kv_heads, c.head_dim};
        case Hook::pattern:
        case Hook::scores:
            return {sequences, c.n_heads, tokens, tokens};
    }
    return {};
}

const char* hook_units(Hook hook) {
    if (hook == Hook::pattern) return "probability";
    if (hook == Hook::scores) return "logit (q.k / sqrt(head_dim), -inf above the diagonal)";
    return "";
}

const float* hook_data(Hook hook, const LayerActivations& a) {
    switch (hook) {
        case Hook::q:
            return a.q;
        case Hook::k:
            return a.k;
        case Hook::rot_q:
            return a.rot_q;
        case Hook::rot_k:
            return a.rot_k;
        case Hook::pattern:
            return a.pattern;
        case Hook::scores:
            return a.scores;
    }
    return nullptr;
}

bool wanted(const std::vector<Hook>& hooks, Hook hook) {
    return std::find(hooks.begin(), hooks.end(), hook) != hooks.end();
}

}  // namespace

const Schedule& layer_schedule(const LlamaModel& model, const DumpRequest& request,
                               std::size_t layer) {
    const bool local = request.local_schedule && model.uses_local_schedule(layer);
    return local ? *request.local_schedule : request.schedule;
}

namespace {

// What the analysis tools need to read each layer of any family (docs/formats.md, "Per-layer
// attributes"), one entry per layer of the model: the RoPE base and scaling used, the rotary
// dimension, the sliding window (0: none), the attention scale and soft-cap (0: none).
void write_layer_attributes(H5Output& out, const LlamaModel& model, const DumpRequest& request) {
    const LlamaConfig& c = model.config();
    const std::size_t n = c.n_layers;
    out.set_attr("/", "family", c.family);
    std::vector<double> thetas(n, request.theta.value_or(c.rope_theta));
    std::vector<std::string> scalings(n, request.theta ? "default" : c.rope_scaling);
    // One row per layer of what it applied; every row has the same width (rotary_dim / 2).
    const std::size_t width = layer_schedule(model, request, 0).inv_freq.size();
    Tensor<double> inv_freq({n, width});
    std::vector<std::int64_t> rotary(n), windows(n);
    for (std::size_t l = 0; l < n; ++l) {
        const Schedule& own = layer_schedule(model, request, l);
        if (own.inv_freq.size() != width) {
            throw std::logic_error("layer_schedule: layers with different rotary_dim");
        }
        std::copy(own.inv_freq.begin(), own.inv_freq.end(), &inv_freq({l, 0}));
        rotary[l] = static_cast<std::int64_t>(own.rotary_dim);
        windows[l] = static_cast<std::int64_t>(layer_window(c, l));
        if (&own == &request.schedule) continue;
        thetas[l] = request.theta.value_or(c.rope_local_theta);  // gemma3's local layers
        scalings[l] = "default";
    }
    out.set_attr("/", "layer_rope_theta", thetas);
    out.set_attr("/", "layer_rope_scaling", scalings);
    out.set_attr("/", "layer_rope_inv_freq", inv_freq);
    out.set_attr("/", "layer_rotary_dim", rotary);
    out.set_attr("/", "layer_sliding_window", windows);
    out.set_attr("/", "layer_attn_scale", std::vector<double>(n, attention_scale(c)));
    out.set_attr("/", "layer_attn_softcap", std::vector<double>(n, c.attn_softcap));
    out.set_attr("/", "final_logit_softcap", static_cast<double>(c.final_softcap));
    out.set_attr("/", "rope_attention_factor", request.schedule.attention_factor);
}

void write_attributes(H5Output& out, const LlamaModel& model, const DumpRequest& request,
                      const Tensor<std::int64_t>& ids, const DumpSummary& summary) {
    const LlamaConfig& c = model.config();
    DumpAttributes attributes;
    attributes.rope_theta = request.theta.value_or(c.rope_theta);
    attributes.rope_layout = request.schedule.layout;
    attributes.rotary_dim = request.schedule.rotary_dim;
    bool bos = true;
    for (std::size_t b = 0; b < summary.sequences; ++b) bos = bos && ids({b, 0}) == 1;
    attributes.bos = bos ? 1 : 0;
    attributes.model = model.name();
    attributes.p = request.p;
    attributes.attn_scale = attention_scale(c);
    write_dump_attributes(out, attributes);
    out.set_attr("/", "rope_reverse", static_cast<std::int64_t>(request.reverse ? 1 : 0));
    out.set_attr("/", "rope_inv_freq", request.schedule.inv_freq);
    auto integer = [](std::size_t v) { return static_cast<std::int64_t>(v); };
    out.set_attr("/", "n_layers", integer(c.n_layers));
    out.set_attr("/", "n_heads", integer(c.n_heads));
    out.set_attr("/", "n_kv_heads", integer(c.n_kv_heads));
    out.set_attr("/", "d_head", integer(c.head_dim));
    out.set_attr("/", "d_model", integer(c.dim));
    out.set_attr("/", "d_vocab", integer(c.vocab_size));
    std::vector<std::int64_t> layers(request.layers.begin(), request.layers.end());
    out.set_attr("/", "layers", layers);
    out.set_attr("/", "mean_nll", summary.mean_nll);
    out.set_attr("/", "perplexity", summary.perplexity);
    write_layer_attributes(out, model, request);
}

}  // namespace

Tensor<std::int64_t> read_token_source(const LlamaModel& model, const TokenSource& source,
                                       const std::function<void(std::size_t)>& progress) {
    const int given = source.file.has_value() + source.ids.has_value() + source.sample.has_value();
    if (given != 1) {
        throw usage_error("give the tokens once: --tokens FILE, --ids \"1 2 3\" or --sample N");
    }
    const std::size_t vocab = model.config().vocab_size;
    if (source.file) return read_token_file(*source.file, vocab);
    if (source.ids) {
        std::istringstream in(*source.ids);
        return parse_token_lines(in, "--ids", vocab);
    }
    return sample_sequences(model, *source.sample, progress);
}

std::string describe(const TokenSource& source) {
    if (source.file) return "file " + *source.file;
    if (source.ids) return "--ids";
    return fmt::format("sampled: {} x {} tokens, seed {}, temperature {}", source.sample->count,
                       source.sample->length, source.sample->seed, source.sample->temperature);
}

std::string summary_line(const DumpSummary& s) {
    return fmt::format(
        "perplexity {:.4f} (mean NLL {:.5f} nats over {} predicted tokens); prefill {:.0f} "
        "tokens/s",
        s.perplexity, s.mean_nll, s.sequences * (s.tokens - 1),
        static_cast<double>(s.sequences * s.tokens) / s.prefill_seconds);
}

namespace {

Schedule override_one(Schedule s, std::optional<double> theta, std::optional<double> p,
                      bool reverse) {
    if (theta) s = make_schedule(s.head_dim, *theta, s.layout, s.rotary_dim);
    if (p || reverse) s = apply_prope(std::move(s), p.value_or(1.0), reverse);
    return s;
}

}  // namespace

Schedule override_schedule(const LlamaModel& model, std::optional<double> theta,
                           std::optional<double> p, bool reverse) {
    return override_one(model.schedule(), theta, p, reverse);
}

std::optional<Schedule> override_local_schedule(const LlamaModel& model,
                                                std::optional<double> theta,
                                                std::optional<double> p, bool reverse) {
    if (!model.local_schedule()) return std::nullopt;
    return override_one(*model.local_schedule(), theta, p, reverse);
}

DumpSummary write_model_dump(const LlamaModel& model, const Tensor<std::int64_t>& ids,
                             const DumpRequest& request, H5Output& out,
                             const std::function<void(std::size_t)>& progress) {
    const LlamaConfig& c = model.config();
    DumpSummary summary;
    summary.sequences = ids.shape.at(0);
    summary.tokens = ids.shape.at(1);
    const std::size_t T = summary.tokens, batch_size = std::max<std::size_t>(1, request.batch);
    for (std::size_t layer : request.layers) {
        if (layer >= c.n_layers) throw usage_error(fmt::format("--layers: no layer {}", layer));
    }
    out.write("tokens", ids, {"batch", "pos"}, "token id");
    for (std::size_t layer : request.layers) {
        for (Hook hook : request.hooks) {
            out.create_dataset(hook_dataset(layer, hook), hook_shape(hook, c, summary.sequences, T),
                               request.stored, hook_axes(hook), hook_units(hook));
        }
    }
    ForwardOptions options;
    options.schedule = &request.schedule;
    options.local_schedule = request.local_schedule ? &*request.local_schedule : nullptr;
    options.keep_scores = wanted(request.hooks, Hook::scores);
    options.keep_pattern = wanted(request.hooks, Hook::pattern);
    std::size_t first = 0;
    double writing = 0;
    if (!request.hooks.empty() && !request.layers.empty()) {
        options.observer = [&](const LayerActivations& a) {
            if (!std::binary_search(request.layers.begin(), request.layers.end(), a.layer)) return;
            const auto start = Clock::now();
            for (Hook hook : request.hooks) {
                Shape count = hook_shape(hook, c, a.batch, T);
                Shape at(count.size(), 0);
                at[0] = first;
                out.write_slab(hook_dataset(a.layer, hook), at, count, hook_data(hook, a));
            }
            writing += seconds_since(start);
        };
    }
    Tensor<double> nll({summary.sequences, T});
    const auto start = Clock::now();
    for (; first < summary.sequences; first += batch_size) {
        const std::size_t batch = std::min(batch_size, summary.sequences - first);
        const std::int64_t* batch_ids = ids.ptr() + first * T;
        const auto hidden = model.forward(batch_ids, batch, T, options);
        const auto batch_nll = token_nll(model, hidden.data(), batch_ids, batch, T);
        std::copy(batch_nll.begin(), batch_nll.end(), nll.ptr() + first * T);
        if (progress) progress(first + batch);
    }
    summary.prefill_seconds = seconds_since(start) - writing;
    summary.mean_nll = mean_nll(nll.data, summary.sequences, T);
    summary.perplexity = std::exp(summary.mean_nll);
    out.write("nll", nll, {"batch", "pos"}, "nats (-log p(token | earlier tokens); 0 at pos 0)");
    write_attributes(out, model, request, ids, summary);
    summary.nll = std::move(nll.data);
    return summary;
}

}  // namespace ropekit
