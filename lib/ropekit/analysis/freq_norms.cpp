#include "ropekit/analysis/freq_norms.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "ropekit/analysis/chunk_norms_internal.hpp"
#include "ropekit/analysis/freq_norms_in_place_internal.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/dump/dump_contents.hpp"

namespace ropekit {
namespace {

// Selection, not a sort: the summary takes two medians per (layer, head), and sorting made them
// 6% of a whole freq-norms run on 28 layers x 16 heads. Same values as sorting.
double median(std::vector<double> v) {
    if (v.empty()) return 0;
    const std::size_t n = v.size();
    const auto middle = v.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::nth_element(v.begin(), middle, v.end());
    if (n % 2) return *middle;
    return 0.5 * (*std::max_element(v.begin(), middle) + *middle);
}

// Pre-RoPE if the dump has it, else post-RoPE (chunk norms are the same).
Hook pick_hook(const DumpReader& dump, std::size_t layer, Hook pre, Hook post) {
    if (dump.has(layer, pre)) return pre;
    if (dump.has(layer, post)) return post;
    throw data_error(dump.input().name(), dump.dataset(layer, pre),
                     fmt::format("no such dataset (nor {})", dump.dataset(layer, post)));
}

// Through HDF5 (chunked or compressed datasets, pipes, other axis orders): one sequence at a
// time on the calling thread. read_vectors throws naming the first NaN/inf element.
void accumulate_through_hdf5(const DumpReader& dump, std::size_t layer, Hook hook,
                             const VectorShape& shape, const Schedule& s, bool exclude_bos,
                             double* sums, double* unrotated) {
    const std::size_t F = s.rotary_dim / 2, first = exclude_bos ? 1 : 0;
    Tensor<float> slab;
    for (std::size_t b = 0; b < shape.batch; ++b) {
        dump.read_vectors(layer, hook, b, slab);
        for (std::size_t t = first; t < shape.pos; ++t) {
            for (std::size_t h = 0; h < shape.heads; ++h) {
                const float* v = &slab.data[(t * shape.heads + h) * shape.dim];
                add_chunk_norms(v, s, F, sums + h * F);
                add_unrotated_norm(v, s, unrotated + h);
            }
        }
    }
}

// One (layer, hook): its schedule, where its sums go and how it is read.
struct LayerTask {
    std::size_t layer;
    Hook hook;
    VectorShape shape;
    Schedule schedule;
    double* sums;
    double* unrotated;
    std::optional<InPlaceVectors> in_place;
    std::optional<std::size_t> bad_sequence;  // in place: the first holding a NaN/inf
};

// Row `row`'s schedule, which must have the first row's rotary_dim (one freq axis for all);
// its inverse frequencies go into r.layer_frequency when theta is known.
Schedule row_schedule(const DumpReader& dump, std::size_t row, FreqNorms& r) {
    const std::size_t layer = r.layers[row];
    Schedule s = dump.schedule(layer, r.schedule.head_dim, false);
    if (s.rotary_dim != r.schedule.rotary_dim) {
        throw data_error(dump.input().name(), "/@layer_rope_inv_freq",
                         fmt::format("layer {} rotates {} dims but layer {} {}: freq-norms needs "
                                     "one rotary_dim (pass --layers)",
                                     layer, s.rotary_dim, r.layers.front(), r.schedule.rotary_dim));
    }
    if (r.layer_frequency.size() > 0) {
        std::copy(s.inv_freq.begin(), s.inv_freq.end(), &r.layer_frequency({row, 0}));
    }
    return s;
}

// Sizes the result from the first layer: schedule, norms and sums [layer, head, freq].
void start_result(const DumpReader& dump, const FreqNormsOptions& options, Hook q0, Hook k0,
                  FreqNorms& r) {
    const std::size_t first = r.layers.front();
    const VectorShape shape = dump.vector_shape(first, options.queries ? q0 : k0);
    r.schedule = dump.schedule(first, shape.dim, false);
    const std::size_t F = r.schedule.rotary_dim / 2, L = r.layers.size();
    if (options.exclude_bos && shape.pos < 2) {
        throw data_error(dump.input().name(), dump.dataset(first, options.queries ? q0 : k0),
                         "--exclude-bos needs at least 2 positions");
    }
    if (!r.schedule.inv_freq.empty()) r.layer_frequency = Tensor<double>({L, F});
    const bool partial = r.schedule.rotary_dim < r.schedule.head_dim;
    for (const bool queries : {true, false}) {
        if (!(queries ? options.queries : options.keys)) continue;
        const Hook hook = queries ? q0 : k0;
        const std::size_t heads = dump.vector_shape(first, hook).heads;
        TensorNorms& t = queries ? r.q : r.k;
        t.dataset_hook = hook_name(hook);
        t.sums = Tensor<double>({L, heads, F});
        if (partial) t.unrotated_sums = Tensor<double>({L, heads});
    }
}

// The tasks of one row: its schedule, each requested hook checked against the first layer.
void plan_row(const DumpReader& dump, const FreqNormsOptions& options, std::size_t row,
              FreqNorms& r, std::vector<LayerTask>& tasks) {
    const std::size_t layer = r.layers[row];
    const Schedule s = row_schedule(dump, row, r);
    for (const bool queries : {true, false}) {
        if (!(queries ? options.queries : options.keys)) continue;
        const Hook hook = queries ? pick_hook(dump, layer, Hook::q, Hook::rot_q)
                                  : pick_hook(dump, layer, Hook::k, Hook::rot_k);
        const VectorShape shape = dump.vector_shape(layer, hook);
        TensorNorms& t = queries ? r.q : r.k;
        if (shape.dim != s.head_dim || shape.heads != t.sums.shape[1]) {
            throw data_error(
                dump.input().name(), dump.dataset(layer, hook),
                fmt::format("{} heads of {} dims, but layer {} has {} of {}", shape.heads,
                            shape.dim, r.layers.front(), t.sums.shape[1], s.head_dim));
        }
        double* unrotated = t.unrotated_sums.size() > 0 ? &t.unrotated_sums({row, 0}) : nullptr;
        std::optional<InPlaceVectors> in_place;
        if (options.read_in_place) in_place = find_vectors_in_place(dump, layer, hook, shape);
        tasks.push_back({layer, hook, shape, s, &t.sums({row, 0, 0}), unrotated, in_place, {}});
    }
}

// In task order, as a serial run would: an HDF5 task is read now; an in-place one that met a
// NaN/inf is reported through read_vectors, which names the element.
void finish_task(const DumpReader& dump, const FreqNormsOptions& options, const LayerTask& t,
                 FreqNorms& r) {
    if (!t.in_place) {
        accumulate_through_hdf5(dump, t.layer, t.hook, t.shape, t.schedule, options.exclude_bos,
                                t.sums, t.unrotated);
    } else if (t.bad_sequence) {
        Tensor<float> slab;
        dump.read_vectors(t.layer, t.hook, *t.bad_sequence, slab);
        throw data_error(dump.input().name(), dump.dataset(t.layer, t.hook),
                         "NaN or inf (the in-place read and HDF5 disagree)");
    }
    r.positions = t.shape.batch * (t.shape.pos - (options.exclude_bos ? 1 : 0));
    ++r.datasets_read;
    if (t.in_place) ++r.datasets_read_in_place;
}

}  // namespace

std::vector<std::size_t> freq_norms_layers(const DumpReader& dump, bool queries) {
    std::vector<std::size_t> layers = dump.layers(queries ? Hook::q : Hook::k);
    if (layers.empty()) layers = dump.layers(queries ? Hook::rot_q : Hook::rot_k);
    if (layers.empty()) {
        throw data_error(
            dump.input().name(), dump.dataset(0, queries ? Hook::q : Hook::k),
            "no layers found (see --name)" +
                dump_contents_hint(dump.input(), {Hook::q, Hook::k, Hook::rot_q, Hook::rot_k}));
    }
    return layers;
}

FreqNorms compute_freq_norms(const DumpReader& dump, const FreqNormsOptions& options,
                             const std::function<void(std::size_t, std::size_t)>& progress) {
    FreqNorms r;
    const std::vector<std::size_t> available = freq_norms_layers(dump, options.queries);
    if (options.layers.empty()) {
        r.layers = available;
    } else {
        for (std::size_t i : options.layers) r.layers.push_back(available[i]);
    }
    // The first layer fixes head_dim, rotary_dim and the heads; every other layer must agree.
    const std::size_t first = r.layers.front(), L = r.layers.size();
    const Hook q0 = options.queries ? pick_hook(dump, first, Hook::q, Hook::rot_q) : Hook::k;
    const Hook k0 = options.keys ? pick_hook(dump, first, Hook::k, Hook::rot_k) : q0;
    start_result(dump, options, q0, k0, r);
    // Rows in waves of about one (layer, hook) per thread: the in-place reads run on our threads
    // (each task writes only its own sums, so results do not depend on the thread count);
    // everything that calls HDF5 stays on this thread.
    const std::size_t hooks = (options.queries ? 1 : 0) + (options.keys ? 1 : 0);
    const std::size_t wave = std::max<std::size_t>(1, thread_count() / hooks);
    for (std::size_t row0 = 0; row0 < L; row0 += wave) {
        const std::size_t row1 = std::min(L, row0 + wave);
        std::vector<LayerTask> tasks;
        for (std::size_t row = row0; row < row1; ++row) plan_row(dump, options, row, r, tasks);
        parallel_for(tasks.size(), [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) {
                LayerTask& t = tasks[i];
                if (t.in_place) {
                    t.bad_sequence = add_vectors_in_place(*t.in_place, t.schedule,
                                                          options.exclude_bos, t.sums, t.unrotated);
                }
            }
        });
        for (const LayerTask& t : tasks) finish_task(dump, options, t, r);
        for (std::size_t row = row0; row < row1; ++row) {
            const std::size_t layer = r.layers[row];
            if (options.queries && options.keys)
                dump.check_query_key(layer, pick_hook(dump, layer, Hook::q, Hook::rot_q),
                                     pick_hook(dump, layer, Hook::k, Hook::rot_k));
            if (progress) progress(row + 1, L);
        }
    }
    finish_freq_norms(r);
    return r;
}

void finish_freq_norms(FreqNorms& r) {
    for (TensorNorms* t : {&r.q, &r.k}) {
        t->norms = t->sums;
        for (double& v : t->norms.data) v /= static_cast<double>(r.positions);
        t->unrotated_norms = t->unrotated_sums;
        for (double& v : t->unrotated_norms.data) v /= static_cast<double>(r.positions);
    }
}

Tensor<double> mean_over_heads(const Tensor<double>& norms) {
    const std::size_t L = norms.shape[0], H = norms.shape[1], F = norms.shape[2];
    Tensor<double> out({L, F});
    for (std::size_t l = 0; l < L; ++l)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t k = 0; k < F; ++k)
                out({l, k}) += norms({l, h, k}) / static_cast<double>(H);
    return out;
}

double top_quarter_share(const double* head_norms, std::size_t frequencies) {
    const std::size_t top = std::max<std::size_t>(1, (frequencies + 3) / 4);
    double all = 0, high = 0;
    for (std::size_t k = 0; k < frequencies; ++k) {
        all += head_norms[k];
        if (k < top) high += head_norms[k];
    }
    return all > 0 ? high / all : 0;
}

std::vector<std::size_t> find_bands(const double* layer_norms, std::size_t heads,
                                    std::size_t frequencies, std::size_t head, double ratio) {
    const std::size_t low = frequencies / 2;
    std::vector<double> layer_low, head_low;
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t k = low; k < frequencies; ++k) {
            layer_low.push_back(layer_norms[h * frequencies + k]);
            if (h == head) head_low.push_back(layer_norms[h * frequencies + k]);
        }
    }
    const double threshold = ratio * std::max(median(layer_low), median(head_low));
    std::vector<std::size_t> bands;
    for (std::size_t k = low; k < frequencies; ++k) {
        if (layer_norms[head * frequencies + k] >= threshold && threshold > 0) bands.push_back(k);
    }
    return bands;
}

std::string freq_norms_summary(const FreqNorms& r, double band_ratio) {
    std::string out = "tensor\tlayer\thead\ttop_quarter_share\tbands\n";
    for (int which = 0; which < 2; ++which) {
        const Tensor<double>& norms = which == 0 ? r.q.norms : r.k.norms;
        if (norms.size() == 0) continue;
        const std::size_t H = norms.shape[1], F = norms.shape[2];
        for (std::size_t row = 0; row < r.layers.size(); ++row) {
            const double* layer = &norms.data[row * H * F];
            std::vector<double> low;
            for (std::size_t h = 0; h < H; ++h)
                for (std::size_t k = F / 2; k < F; ++k) low.push_back(layer[h * F + k]);
            const double layer_median = median(low);
            for (std::size_t h = 0; h < H; ++h) {
                std::string bands;
                for (std::size_t k : find_bands(layer, H, F, h, band_ratio)) {
                    bands += fmt::format("{}{}:{:.1f}", bands.empty() ? "" : ",", k,
                                         layer[h * F + k] / layer_median);
                }
                out += fmt::format("{}\t{}\t{}\t{:.4f}\t{}\n", which == 0 ? "q" : "k",
                                   r.layers[row], h, top_quarter_share(layer + h * F, F),
                                   bands.empty() ? "-" : bands);
            }
        }
    }
    return out;
}

namespace {

// layer_frequency [layer, freq], and frequency [freq] when every layer has the same table.
void write_frequencies(H5Output& out, const FreqNorms& r) {
    if (r.layer_frequency.size() == 0) return;
    const std::size_t L = r.layer_frequency.shape[0], F = r.layer_frequency.shape[1];
    out.write("layer_frequency", r.layer_frequency, {"layer", "freq"}, "rad/token");
    out.set_attr("layer_frequency", "description",
                 "inverse frequency of each RoPE chunk at each layer (0 = not rotated); freq 0 = "
                 "the first chunk");
    const std::vector<double>& all = r.layer_frequency.data;
    for (std::size_t l = 1; l < L; ++l) {
        if (!std::equal(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(F),
                        all.begin() + static_cast<std::ptrdiff_t>(l * F)))
            return;
    }
    Tensor<double> frequency({F});
    frequency.data.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(F));
    out.write("frequency", frequency, {"freq"}, "rad/token");
}

// Partial rotary: the norm of the dims that do not rotate, per layer and head.
void write_unrotated(H5Output& out, const TensorNorms& t, const std::string& name,
                     const char* head_axis) {
    if (t.unrotated_sums.size() == 0) return;
    out.write(name + "_unrotated_norms", t.unrotated_norms, {"layer", head_axis}, "activation");
    out.set_attr(name + "_unrotated_norms", "description",
                 "mean over batch and positions of the 2-norm of the dims past rotary_dim, which "
                 "RoPE leaves unrotated (no frequency)");
    out.write(name + "_unrotated_norm_sums", t.unrotated_sums, {"layer", head_axis}, "activation");
    out.set_attr(name + "_unrotated_norm_sums", "description",
                 "sum over batch and positions of the unrotated dims' 2-norm (divided by "
                 "positions_averaged: " +
                     name + "_unrotated_norms); rope-merge adds them");
}

}  // namespace

void write_freq_norms(H5Output& out, const FreqNorms& r, const FreqNormsOptions& options) {
    Tensor<std::int64_t> layer({r.layers.size()});
    for (std::size_t i = 0; i < r.layers.size(); ++i)
        layer.data[i] = static_cast<std::int64_t>(r.layers[i]);
    out.write("layer", layer, {"layer"});
    write_frequencies(out, r);
    for (int which = 0; which < 2; ++which) {
        const TensorNorms& t = which == 0 ? r.q : r.k;
        if (t.norms.size() == 0) continue;
        const std::string name = which == 0 ? "q" : "k";
        out.write(name + "_norms", t.norms, {"layer", which == 0 ? "head" : "kv_head", "freq"},
                  "activation");
        out.set_attr(name + "_norms", "source", t.dataset_hook);
        out.set_attr(name + "_norms", "description",
                     "mean over batch and positions of the 2-norm of each RoPE chunk; freq 0 = "
                     "highest frequency");
        out.write(name + "_norm_sums", t.sums, {"layer", which == 0 ? "head" : "kv_head", "freq"},
                  "activation");
        out.set_attr(name + "_norm_sums", "description",
                     "sum over batch and positions of the 2-norm of each RoPE chunk (divided by "
                     "positions_averaged: " +
                         name + "_norms); rope-merge adds them");
        out.write("layer_" + name + "_norms", mean_over_heads(t.norms), {"layer", "freq"},
                  "activation");
        out.set_attr("layer_" + name + "_norms", "description",
                     "q/k chunk norms averaged over heads (Figure 3)");
        write_unrotated(out, t, name, which == 0 ? "head" : "kv_head");
    }
    out.set_attr("/", "positions_averaged", static_cast<std::int64_t>(r.positions));
    out.set_attr("/", "exclude_bos", static_cast<std::int64_t>(options.exclude_bos ? 1 : 0));
    out.set_attr("/", "band_ratio", options.band_ratio);
    out.set_attr("/", "rope_layout", layout_name(r.schedule.layout));
    out.set_attr("/", "rotary_dim", static_cast<std::int64_t>(r.schedule.rotary_dim));
    out.set_attr("/", "head_dim", static_cast<std::int64_t>(r.schedule.head_dim));
}

namespace {
std::vector<std::string> frequency_labels(const FreqNorms& r) {
    std::vector<std::string> labels;
    const std::size_t F = r.schedule.rotary_dim / 2;
    for (std::size_t k = 0; k < F; ++k) labels.push_back(std::to_string(k));
    return labels;
}
}  // namespace

Heatmap layer_norms_figure(const FreqNorms& r, bool queries) {
    const Tensor<double> means = mean_over_heads(queries ? r.q.norms : r.k.norms);
    const std::size_t L = means.shape[0], F = means.shape[1];
    Heatmap h;
    h.rows = F;
    h.cols = L;
    h.values.resize(F * L);
    for (std::size_t l = 0; l < L; ++l)
        for (std::size_t k = 0; k < F; ++k) h.values[k * L + l] = means({l, k});
    h.title = fmt::format("Mean {} chunk norm per layer (over heads and tokens)",
                          queries ? "query" : "key");
    h.x_label = "layer";
    h.y_label = "frequency index (0 = highest)";
    for (std::size_t l : r.layers) h.x_tick_labels.push_back(std::to_string(l));
    h.y_tick_labels = frequency_labels(r);
    h.color_label = "mean 2-norm";
    h.color_units = "activation";
    h.color_min = 0;  // norms are >= 0: a scale from the data minimum would magnify small ones
    return h;
}

Heatmap head_norms_figure(const FreqNorms& r, bool queries, std::size_t row) {
    const Tensor<double>& norms = queries ? r.q.norms : r.k.norms;
    const std::size_t H = norms.shape[1], F = norms.shape[2];
    Heatmap h;
    h.rows = F;
    h.cols = H;
    h.values.resize(F * H);
    for (std::size_t head = 0; head < H; ++head)
        for (std::size_t k = 0; k < F; ++k) h.values[k * H + head] = norms({row, head, k});
    h.title = fmt::format("Layer {}: mean {} chunk norm per head", r.layers[row],
                          queries ? "query" : "key");
    h.x_label = queries ? "head" : "kv head";
    h.y_label = "frequency index (0 = highest)";
    h.y_tick_labels = frequency_labels(r);
    h.color_label = "mean 2-norm";
    h.color_units = "activation";
    h.color_min = 0;  // norms are >= 0: a scale from the data minimum would magnify small ones
    return h;
}

}  // namespace ropekit
