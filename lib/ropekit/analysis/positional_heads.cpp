#include "ropekit/analysis/positional_heads.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/finite.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/mapped_region.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/dump/dump_contents.hpp"
#include "ropekit/rope/attention.hpp"

namespace ropekit {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The first query that has a key r tokens back (not the BOS key when it is excluded).
std::size_t first_query(std::size_t r, bool exclude_bos) {
    return exclude_bos ? r + 1 : r;
}

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
        // Attributed only with the layer's frequencies (a recorded table or rope_theta).
        v.available = required || dump.attributes().rope_theta.has_value() ||
                      !dump.frequency_source().empty();
    } else if (required) {
        const Hook missing = dump.has(layer, Hook::rot_q) ? Hook::rot_k : Hook::rot_q;
        throw data_error(dump.input().name(), dump.dataset(layer, missing),
                         fmt::format("no such dataset (nor pre-RoPE {} and {})",
                                     dump.dataset(layer, Hook::q), dump.dataset(layer, Hook::k)));
    }
    if (v.available) {
        v.schedule = dump.schedule(layer, dump.vector_shape(layer, v.q).dim, v.rotate);
    }
    return v;
}

// cos and sin of every (position, frequency) of a pre-RoPE layer, times attention_factor, as
// rotate() computes them, and each frequency's two dims: packing with this table rotates bit for
// bit like rotate().
struct RotationTable {
    std::size_t frequencies = 0;
    std::vector<double> cos, sin;  // [T x frequencies]
    std::vector<std::pair<std::size_t, std::size_t>> dims;
    bool half = false;       // dims are (f, f + frequencies): contiguous loops
    bool every_dim = false;  // the rotation writes all D dims: nothing to copy first
};

RotationTable rotation_table(const Schedule& s, std::size_t tokens) {
    RotationTable r;
    r.frequencies = s.inv_freq.size();
    r.cos.resize(tokens * r.frequencies);
    r.sin.resize(r.cos.size());
    for (std::size_t t = 0; t < tokens; ++t) {
        for (std::size_t f = 0; f < r.frequencies; ++f) {
            const double angle = static_cast<double>(t) * s.inv_freq[f];
            r.cos[t * r.frequencies + f] = std::cos(angle) * s.attention_factor;
            r.sin[t * r.frequencies + f] = std::sin(angle) * s.attention_factor;
        }
    }
    r.half = true;
    for (std::size_t f = 0; f < r.frequencies; ++f) {
        r.dims.push_back(s.chunk_dims(f));
        r.half = r.half && r.dims[f] == std::pair{f, f + r.frequencies};
    }
    r.every_dim = 2 * r.frequencies == s.head_dim;
    return r;
}

// One sequence's [T, heads, D] vectors of one hook, as read or mapped.
struct SequenceSlab {
    const float* rows = nullptr;
    VectorShape shape{};
};

// x' = x cos - y sin, y' = x sin + y cos in double, rounded once: the arithmetic of rotate().
void rotate_row(const float* from, std::size_t t, const RotationTable& r, float* to) {
    const double* c = &r.cos[t * r.frequencies];
    const double* sn = &r.sin[t * r.frequencies];
    if (r.half) {  // the same arithmetic over contiguous halves, which vectorises
        const std::size_t F = r.frequencies;
        for (std::size_t f = 0; f < F; ++f) {
            const double x = from[f], y = from[f + F];
            to[f] = static_cast<float>(x * c[f] - y * sn[f]);
            to[f + F] = static_cast<float>(x * sn[f] + y * c[f]);
        }
        return;
    }
    for (std::size_t f = 0; f < r.dims.size(); ++f) {
        const auto [a, b] = r.dims[f];
        const double x = from[a], y = from[b];
        to[a] = static_cast<float>(x * c[f] - y * sn[f]);
        to[b] = static_cast<float>(x * sn[f] + y * c[f]);
    }
}

// Row t of head h of the slab copied to `to` [D], rotated when `rotation` is given. False when
// the row is not finite: a NaN/inf in the dump (mapped sequences are not checked before) or a
// rotation past the float range (a chunk norm above 3.4e38); report_bad_row says which, where.
bool pack_row(const SequenceSlab& slab, std::size_t t, std::size_t h, const RotationTable* rotation,
              float* to) {
    const std::size_t D = slab.shape.dim;
    const float* from = &slab.rows[(t * slab.shape.heads + h) * D];
    if (!rotation || !rotation->every_dim) std::copy_n(from, D, to);
    if (rotation) rotate_row(from, t, *rotation, to);
    return all_finite(to, D);
}

// One head's rows [T, D], contiguous for the score SGEMMs and the chunk logits, and its max|v|
// (for causal_attention's float-range test, found while each row is in L1). The thread that
// scores a head packs it, so its q and k are still in L2 when the GEMMs read them (packing all
// heads first put 8 MB between the packing and the GEMMs and halved their rate).
struct PackedHead {
    static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::vector<float> values;
    float max_abs = 0;
    std::size_t head = kNone;
};

// Packs head h unless `packed` holds it already (query heads of a group share their key head).
// False when a packed row is not finite (see pack_row).
bool pack_head(const SequenceSlab& slab, std::size_t h, const RotationTable* rotation,
               PackedHead& packed) {
    if (packed.head == h) return true;
    const std::size_t T = slab.shape.pos, D = slab.shape.dim;
    packed.values.resize(T * D);
    packed.max_abs = 0;
    packed.head = PackedHead::kNone;
    for (std::size_t t = 0; t < T; ++t) {
        float* to = &packed.values[t * D];
        if (!pack_row(slab, t, h, rotation, to)) return false;
        packed.max_abs = std::max(packed.max_abs, max_abs(to, D, 1, D));
    }
    packed.head = h;
    return true;
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

// The dump layers to scan: options.layers indexes positional_head_layers().
std::vector<std::size_t> selected_layers(const DumpReader& dump, const PositionalOptions& options) {
    const std::vector<std::size_t> available = positional_head_layers(dump, options.from);
    if (options.layers.empty()) return available;
    std::vector<std::size_t> layers;
    for (std::size_t i : options.layers) layers.push_back(available[i]);
    return layers;
}

// One layer's sizes, from its pattern and (when there) its query and key vectors.
struct LayerGeometry {
    VectorSource vectors;
    std::size_t batch = 0, tokens = 0, heads = 0, kv_heads = 0, dim = 0;
    std::size_t group = 1;  // query heads per key head
};

void read_pattern_geometry(const DumpReader& dump, std::size_t layer, LayerGeometry& g) {
    const PatternShape ps = dump.pattern_shape(layer, Hook::pattern);
    if (ps.queries != ps.keys) {
        throw data_error(
            dump.input().name(), dump.dataset(layer, Hook::pattern),
            fmt::format("{} queries and {} keys: expected a square pattern", ps.queries, ps.keys));
    }
    g.batch = ps.batch, g.tokens = ps.queries, g.heads = ps.heads;
}

// Reads the vectors' sizes; with a pattern too, they must describe the same heads.
void read_vector_geometry(const DumpReader& dump, std::size_t layer, bool from_pattern,
                          LayerGeometry& g) {
    const VectorSource& v = g.vectors;
    g.group = dump.check_query_key(layer, v.q, v.k);
    const VectorShape qs = dump.vector_shape(layer, v.q);
    g.kv_heads = dump.vector_shape(layer, v.k).heads;
    g.dim = qs.dim;
    if (from_pattern && (qs.batch != g.batch || qs.pos != g.tokens || qs.heads != g.heads)) {
        throw data_error(dump.input().name(), dump.dataset(layer, v.q),
                         fmt::format("[{} sequences, {} positions, {} heads] does not match {}'s "
                                     "[{}, {}, {}]",
                                     qs.batch, qs.pos, qs.heads, dump.dataset(layer, Hook::pattern),
                                     g.batch, g.tokens, g.heads));
    }
    g.batch = qs.batch, g.tokens = qs.pos, g.heads = qs.heads;
}

LayerGeometry layer_geometry(const DumpReader& dump, std::size_t layer, bool from_pattern) {
    LayerGeometry g;
    g.vectors = find_vectors(dump, layer, !from_pattern);
    if (from_pattern) read_pattern_geometry(dump, layer, g);
    if (g.vectors.available) read_vector_geometry(dump, layer, from_pattern, g);
    return g;
}

// Each layer's own frequencies, [layer, freq], when the first layer's are known.
void record_layer_frequencies(PositionalHeads& r, std::size_t row, const VectorSource& v) {
    if (row == 0 && v.available && !v.schedule.inv_freq.empty()) {
        r.layer_frequency = Tensor<double>({r.layers.size(), r.frequencies});
    }
    if (r.layer_frequency.size() == 0) return;
    if (v.schedule.inv_freq.size() != r.frequencies) {
        r.layer_frequency = Tensor<double>();  // some layer's are unknown: none recorded
        return;
    }
    std::copy(v.schedule.inv_freq.begin(), v.schedule.inv_freq.end(), &r.layer_frequency({row, 0}));
}

// The first layer sets the result's sizes and source; every later one must agree with it.
void record_layer_geometry(PositionalHeads& r, std::size_t row, const DumpReader& dump,
                           const LayerGeometry& g) {
    const bool from_pattern = r.options.from == HeadSource::pattern;
    const VectorSource& v = g.vectors;
    if (row == 0) {
        r.heads = g.heads;
        r.sequences = g.batch;
        r.tokens = g.tokens;
        r.attributed = v.available;
        r.frequencies = v.available ? v.schedule.rotary_dim / 2 : 0;
        r.source = from_pattern ? hook_name(Hook::pattern)
                                : fmt::format("{}/{}{}", hook_name(v.q), hook_name(v.k),
                                              v.rotate ? " rotated by the schedule" : "");
    } else if (g.heads != r.heads || v.available != r.attributed) {
        const std::size_t layer = r.layers[row];
        throw data_error(
            dump.input().name(), dump.dataset(layer, from_pattern ? Hook::pattern : v.q),
            fmt::format("{} heads, but layer {} has {}", g.heads, r.layers[0], r.heads));
    } else if (v.available && v.schedule.rotary_dim / 2 != r.frequencies) {
        throw data_error(
            dump.input().name(), "/@layer_rope_inv_freq",
            fmt::format("layer {} rotates {} dims but layer {} {}: one rotary_dim "
                        "per run (pass --layers)",
                        r.layers[row], v.schedule.rotary_dim, r.layers[0], 2 * r.frequencies));
    }
    record_layer_frequencies(r, row, v);
}

HeadStatistics empty_accumulator(std::size_t offsets, std::size_t frequencies, bool attributed) {
    HeadStatistics a;
    a.mass_sum.assign(offsets, 0.0);
    a.mass_min.assign(offsets, std::numeric_limits<double>::infinity());
    if (attributed) {
        a.chunk_logit.assign(offsets, std::vector<double>(frequencies, 0.0));
        a.logit.assign(offsets, 0.0);
    }
    return a;
}

// One layer's pass over the sequences: its inputs, the current sequence's (rotated) vectors,
// and what is summed per head.
struct LayerScan {
    const DumpReader& dump;
    const PositionalOptions& options;
    std::size_t layer = 0;
    LayerGeometry g;
    bool attributed = false;
    std::size_t frequencies = 0;
    float scale = 0;                        // qk: multiplier of q.k
    Tensor<float> q{}, k{};                 // sequence b's vectors when read (not mapped)
    SequenceSlab q_slab{}, k_slab{};        // sequence b's [T, heads, D], read or mapped
    RotationTable rotation{};               // pre-RoPE layers only
    std::vector<HeadStatistics> acc{};      // per head
    std::vector<Tensor<float>> pictures{};  // per head, sequence 0's corner
};

// One thread's scratch: the head it scores, packed, and its [T, T] pattern and [D] sums.
struct HeadScratch {
    PackedHead q, k;
    Tensor<float> pattern;
    std::vector<double> dim_logit;
};

// Sequence b's [T, T] pattern of head h: read from the dump, or softmax(scale q.k) of the packed
// head in `w`.
void head_pattern(const LayerScan& s, std::size_t b, std::size_t h, HeadScratch& w) {
    Tensor<float>& pattern = w.pattern;
    const LayerGeometry& g = s.g;
    if (s.options.from == HeadSource::pattern) {
        s.dump.read_pattern(s.layer, Hook::pattern, b, h, pattern);
        check_rows_sum_to_one(pattern, s.dump.input().name(),
                              s.dump.dataset(s.layer, Hook::pattern), b, h);
        return;
    }
    causal_attention(w.q.values.data(), g.dim, w.k.values.data(), g.dim, g.tokens, g.dim, s.scale,
                     pattern.ptr(), w.q.max_abs, w.k.max_abs);
}

void add_sequence_stats(HeadStatistics& a, const SequenceStats& s) {
    for (std::size_t o = 0; o < a.mass_sum.size(); ++o) {
        a.mass_sum[o] += s.offset_mass[o];  // NaN stays NaN: offset too long
        a.mass_min[o] = std::min(a.mass_min[o], s.offset_mass[o]);
    }
    a.prev_mul += s.prev_mul;
    a.prev_abs += s.prev_abs;
}

// The top-left n x n corner of a [T, T] pattern.
Tensor<float> pattern_corner(const Tensor<float>& pattern, std::size_t n) {
    const std::size_t T = pattern.shape[0];
    Tensor<float> corner({n, n});
    for (std::size_t i = 0; i < n; ++i) std::copy_n(&pattern.data[i * T], n, &corner.data[i * n]);
    return corner;
}

// Logit of query i at key i - o, chunk by chunk: (R^i q_i)^(c) . (R^j k_j)^(c). Summed over
// queries per dimension first (a loop over d that vectorises), then per chunk (its two dims)
// and in whole (every dim, unrotated ones included), from the head packed in `w`.
void add_chunk_logits(const LayerScan& s, HeadScratch& w, HeadStatistics& a) {
    const LayerGeometry& g = s.g;
    const std::size_t T = g.tokens, D = g.dim;
    const float* qh = w.q.values.data();
    const float* kh = w.k.values.data();
    std::vector<double>& dim_logit = w.dim_logit;
    for (std::size_t o = 0; o < a.logit.size(); ++o) {
        std::fill(dim_logit.begin(), dim_logit.end(), 0.0);
        for (std::size_t i = first_query(o, s.options.exclude_bos); i < T; ++i) {
            const float* qi = qh + i * D;
            const float* kj = kh + (i - o) * D;
            for (std::size_t d = 0; d < D; ++d) dim_logit[d] += double(qi[d]) * kj[d];
        }
        for (std::size_t d = 0; d < D; ++d) a.logit[o] += dim_logit[d];
        for (std::size_t c = 0; c < s.frequencies; ++c) {
            const auto [x, y] = g.vectors.schedule.chunk_dims(c);
            a.chunk_logit[o][c] += dim_logit[x] + dim_logit[y];
        }
    }
}

// Sequence b's [T, heads, D] floats of one hook. Contiguous f32 datasets (h5py's default) are
// mapped straight from the file, as freq-norms reads them: no copy out of the page cache (that
// copy was 14% of the run), and no pass of its own for NaN/inf (packing checks every row).
// Everything else goes through DumpReader::read_vectors into `slab`, which checks as it reads.
class SequenceVectors {
  public:
    SequenceVectors(const DumpReader& dump, std::size_t layer, Hook hook, std::size_t b,
                    Tensor<float>& slab) {
        const std::optional<SequenceInPlace> sequence = dump.sequence_in_place(layer, hook, b);
        if (sequence && sequence->dtype == DType::f32 && sequence->offset % sizeof(float) == 0) {
            const ReadOnlyFd fd(sequence->path);
            region_.emplace(fd.get(), sequence->file_name, sequence->offset, sequence->bytes);
            data_ = reinterpret_cast<const float*>(region_->data());
            return;
        }
        dump.read_vectors(layer, hook, b, slab);
        data_ = slab.data.data();
    }
    const float* data() const { return data_; }

  private:
    std::optional<MappedRegion> region_;
    const float* data_ = nullptr;
};

// Heads [begin, end) of sequence b, each thread with its own scratch. False when a row of a
// head's vectors is not finite (report_bad_row then names where).
bool scan_heads(LayerScan& s, std::size_t b, std::size_t begin, std::size_t end) {
    const std::size_t T = s.g.tokens;
    const RotationTable* rotation = s.g.vectors.rotate ? &s.rotation : nullptr;
    HeadScratch w{{}, {}, Tensor<float>({T, T}), std::vector<double>(s.g.dim)};
    for (std::size_t h = begin; h < end; ++h) {
        if (s.g.vectors.available && (!pack_head(s.q_slab, h, rotation, w.q) ||
                                      !pack_head(s.k_slab, h / s.g.group, rotation, w.k))) {
            return false;
        }
        head_pattern(s, b, h, w);
        add_sequence_stats(s.acc[h], sequence_stats(w.pattern.ptr(), T, s.options));
        if (b == 0) {
            s.pictures[h] = pattern_corner(w.pattern, std::min(T, s.options.picture_tokens));
        }
        if (s.attributed) add_chunk_logits(s, w, s.acc[h]);
    }
    return true;
}

// Why packing sequence b failed, named as one serial pass would meet it (so the message does not
// depend on --threads): per hook, queries first, a NaN/inf in the dump (HDF5's reader names the
// element), else the first (position, head) whose rotation overflows float32.
[[noreturn]] void report_bad_row(LayerScan& s, std::size_t b) {
    std::vector<float> row(s.g.dim);
    const RotationTable* rotation = s.g.vectors.rotate ? &s.rotation : nullptr;
    for (const bool queries : {true, false}) {
        const Hook hook = queries ? s.g.vectors.q : s.g.vectors.k;
        s.dump.read_vectors(s.layer, hook, b, queries ? s.q : s.k);
        const SequenceSlab& slab = queries ? s.q_slab : s.k_slab;
        for (std::size_t t = 0; t < slab.shape.pos; ++t) {
            for (std::size_t h = 0; h < slab.shape.heads; ++h) {
                if (pack_row(slab, t, h, rotation, row.data())) continue;
                throw data_error(s.dump.input().name(), s.dump.dataset(s.layer, hook),
                                 fmt::format("rotating batch {}, pos {}, head {} by the schedule "
                                             "overflows float32 (a chunk norm above 3.4e38)",
                                             b, t, h));
            }
        }
    }
    throw std::logic_error("report_bad_row: every row packs");
}

// Heads of a sequence run in parallel from q and k (OpenBLAS single-threaded inside, so
// results do not depend on --threads); read from the file, they run in order (the HDF5 library
// is not thread-safe).
void scan_sequence(LayerScan& s, std::size_t b) {
    const VectorSource& v = s.g.vectors;
    std::optional<SequenceVectors> q, k;
    if (v.available) {
        q.emplace(s.dump, s.layer, v.q, b, s.q);
        k.emplace(s.dump, s.layer, v.k, b, s.k);
        s.q_slab = {q->data(), s.dump.vector_shape(s.layer, v.q)};
        s.k_slab = {k->data(), s.dump.vector_shape(s.layer, v.k)};
    }
    std::atomic<bool> bad_row{false};
    if (s.options.from == HeadSource::pattern) {
        bad_row = !scan_heads(s, b, 0, s.g.heads);
    } else {
        use_single_threaded_blas();
        parallel_for(s.g.heads, [&](std::size_t begin, std::size_t end) {
            if (!scan_heads(s, b, begin, end)) bad_row = true;
        });
    }
    if (bad_row) report_bad_row(s, b);
}

// The offset with the most mass: NaN never wins, ties keep the smaller offset.
std::size_t dominant_offset(const std::vector<double>& offset_mass) {
    std::size_t offset = 0;
    double best = -1;
    for (std::size_t o = 0; o < offset_mass.size(); ++o) {
        if (offset_mass[o] > best) {
            best = offset_mass[o];
            offset = o;
        }
    }
    return offset;
}

// Each frequency chunk's share of the logit at the head's offset, over absolute contributions
// (|chunk c| / sum of |chunk|), so that shares lie in [0, 1] and sum to 1 even when chunks cancel;
// top_freq_share is that of the highest quarter. NaN when every chunk contributes exactly 0.
void attribute_frequencies(const HeadStatistics& a, std::size_t frequencies,
                           PositionalHeadResult& res) {
    const std::vector<double>& chunks = a.chunk_logit[res.offset];
    double total = 0;
    for (std::size_t c = 0; c < frequencies; ++c) total += std::abs(chunks[c]);
    res.frequency_share.resize(frequencies);
    double top = 0;
    for (std::size_t c = 0; c < frequencies; ++c) {
        res.frequency_share[c] = total > 0 ? std::abs(chunks[c]) / total : kNaN;
        if (c < std::max<std::size_t>(1, (frequencies + 3) / 4)) top += res.frequency_share[c];
    }
    res.top_freq_share = top;
}

// Head h of the layer, from its statistics over the layer's sequences.
PositionalHeadResult head_result(LayerScan& s, std::size_t h) {
    PositionalHeadResult res =
        finish_head(s.acc[h], s.g.batch, s.options.epsilon, s.attributed ? s.frequencies : 0);
    res.layer = s.layer;
    res.head = h;
    res.picture = std::move(s.pictures[h]);
    res.statistics = std::move(s.acc[h]);
    return res;
}

// Scans one layer over every sequence and appends its heads' results to r.
void scan_layer(const DumpReader& dump, std::size_t row, PositionalHeads& r) {
    const PositionalOptions& options = r.options;
    const std::size_t layer = r.layers[row];
    LayerScan s{dump, options, layer,
                layer_geometry(dump, layer, options.from == HeadSource::pattern)};
    record_layer_geometry(r, row, dump, s.g);
    s.attributed = r.attributed;
    s.frequencies = r.frequencies;
    s.scale = static_cast<float>(
        options.logit_scale.value_or(1.0 / std::sqrt(static_cast<double>(s.g.dim))));
    if (options.from == HeadSource::qk) r.logit_scale = s.scale;
    s.acc.assign(s.g.heads, empty_accumulator(options.max_offset + 1, s.frequencies, s.attributed));
    s.pictures.resize(s.g.heads);
    if (s.g.vectors.available && s.g.vectors.rotate) {
        s.rotation = rotation_table(s.g.vectors.schedule, s.g.tokens);
    }
    for (std::size_t b = 0; b < s.g.batch; ++b) scan_sequence(s, b);
    for (std::size_t h = 0; h < s.g.heads; ++h) r.results.push_back(head_result(s, h));
}

}  // namespace

PositionalHeadResult finish_head(const HeadStatistics& a, std::size_t sequences, double epsilon,
                                 std::size_t frequencies) {
    const double B = static_cast<double>(sequences);
    PositionalHeadResult res;
    res.offset_mass.resize(a.mass_sum.size());
    for (std::size_t o = 0; o < a.mass_sum.size(); ++o) res.offset_mass[o] = a.mass_sum[o] / B;
    res.offset = dominant_offset(res.offset_mass);
    res.mass = res.offset_mass[res.offset];
    res.min_mass = a.mass_min[res.offset];
    res.positional = res.min_mass >= 1.0 - epsilon;
    res.prev_mul = a.prev_mul / B;
    res.prev_abs = a.prev_abs / B;
    res.top_freq_share = kNaN;
    if (frequencies > 0) attribute_frequencies(a, frequencies, res);
    return res;
}

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

std::vector<std::size_t> positional_head_layers(const DumpReader& dump, HeadSource from) {
    const bool from_pattern = from == HeadSource::pattern;
    std::vector<std::size_t> layers = dump.layers(from_pattern ? Hook::pattern : Hook::rot_q);
    if (!from_pattern && layers.empty()) layers = dump.layers(Hook::q);
    if (layers.empty()) {
        throw data_error(
            dump.input().name(), dump.dataset(0, from_pattern ? Hook::pattern : Hook::rot_q),
            "no layers found (see --name, --from)" +
                dump_contents_hint(dump.input(), {Hook::pattern, Hook::rot_q, Hook::q, Hook::k}));
    }
    return layers;
}

std::optional<double> logit_scale_choice(const std::string& choice,
                                         const DumpAttributes& attributes) {
    if (choice == "auto") return attributes.attn_scale;
    if (choice == "sqrt") return std::nullopt;
    if (choice == "none") return 1.0;
    throw usage_error("--scale: expected auto, sqrt or none, got '" + choice + "'");
}

PositionalHeads find_positional_heads(
    const DumpReader& dump, const PositionalOptions& options,
    const std::function<void(std::size_t, std::size_t)>& progress) {
    PositionalHeads r;
    r.options = options;
    r.layers = selected_layers(dump, options);
    for (std::size_t row = 0; row < r.layers.size(); ++row) {
        scan_layer(dump, row, r);
        if (progress) progress(row + 1, r.layers.size());
    }
    return r;
}

std::string heads_table_tsv(const PositionalHeads& r) {
    std::string out =
        "layer\thead\toffset\tmass\tmin_mass\tpositional\tprev_mul\tprev_abs\ttop_freq_share\n";
    for (const PositionalHeadResult& h : r.results) {
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
    for (const PositionalHeadResult& h : r.results) {
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
        const PositionalHeadResult& h = r.results[i];
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
    if (r.layer_frequency.size() > 0) {
        out.write("layer_frequency", r.layer_frequency, {"layer", "freq"}, "rad/token");
        out.set_attr("layer_frequency", "description",
                     "inverse frequency of each RoPE chunk at each layer (freq axis of "
                     "frequency_share; 0 = not rotated)");
    }
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
                 "share of the logit at the offset carried by the highest quarter of frequencies, "
                 "over absolute chunk contributions: in [0, 1] (NaN without q and k)");
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
    write_head_statistics(out, r);
}

Heatmap pattern_figure(const PositionalHeadResult& h, const std::string& source) {
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
    for (const PositionalHeadResult& h : r.results) m.values.push_back(h.mass);
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
