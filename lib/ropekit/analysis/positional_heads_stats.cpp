// find-positional-heads' sufficient statistics: written beside the numbers, read back for
// rope-merge.
#include <algorithm>
#include <cmath>

#include "ropekit/analysis/positional_heads.hpp"
#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

const std::vector<std::string> kLayerHead{"layer", "head"};

double required_attr(const H5Input& in, const std::string& name) {
    const std::optional<double> value = in.attr_double("/", name);
    if (!value) {
        throw data_error(in.name(), "/@" + name,
                         "expected a number (is this a find-positional-heads output?)");
    }
    return *value;
}

void require_statistics(const H5Input& in, bool attributed) {
    std::vector<std::string> names{"mass_sum", "mass_min", "prev_mul_sum", "prev_abs_sum"};
    if (attributed) names.insert(names.end(), {"logit_sum", "chunk_logit_sum"});
    for (const std::string& name : names) {
        if (!in.has(name)) {
            throw data_error(in.name(), name,
                             "no such dataset: rerun find-positional-heads (older versions did "
                             "not store the statistics rope-merge adds)");
        }
    }
}

PositionalOptions stored_options(const H5Input& in) {
    PositionalOptions o;
    o.from =
        in.attr_string("/", "from").value_or("") == "qk" ? HeadSource::qk : HeadSource::pattern;
    o.epsilon = required_attr(in, "epsilon");
    o.max_offset = static_cast<std::size_t>(required_attr(in, "max_offset"));
    o.exclude_bos = required_attr(in, "exclude_bos") != 0;
    o.exclude_current_token = required_attr(in, "exclude_current_token") != 0;
    return o;
}

}  // namespace

void write_head_statistics(H5Output& out, const PositionalHeads& r) {
    const std::size_t L = r.layers.size(), H = r.heads, K = r.options.max_offset + 1,
                      F = r.frequencies;
    Tensor<double> mass_sum({L, H, K}), mass_min({L, H, K}), prev_mul({L, H}), prev_abs({L, H}),
        logit({L, H, K}), chunk_logit({L, H, K, F});
    for (std::size_t i = 0; i < r.results.size(); ++i) {
        const HeadStatistics& a = r.results[i].statistics;
        std::copy(a.mass_sum.begin(), a.mass_sum.end(), &mass_sum.data[i * K]);
        std::copy(a.mass_min.begin(), a.mass_min.end(), &mass_min.data[i * K]);
        prev_mul.data[i] = a.prev_mul;
        prev_abs.data[i] = a.prev_abs;
        if (!r.attributed) continue;
        std::copy(a.logit.begin(), a.logit.end(), &logit.data[i * K]);
        for (std::size_t o = 0; o < K; ++o) {
            std::copy(a.chunk_logit[o].begin(), a.chunk_logit[o].end(),
                      &chunk_logit.data[(i * K + o) * F]);
        }
    }
    out.write("mass_sum", mass_sum, {"layer", "head", "relative_offset"}, "probability");
    out.set_attr("mass_sum", "description",
                 "sufficient statistic: sum over sequences of the per-sequence mean mass (NaN "
                 "where sequences are too short); offset_mass = mass_sum / sequences");
    out.write("mass_min", mass_min, {"layer", "head", "relative_offset"}, "probability");
    out.set_attr("mass_min", "description",
                 "sufficient statistic: minimum over sequences of the per-sequence mean mass");
    out.write("prev_mul_sum", prev_mul, kLayerHead);
    out.write("prev_abs_sum", prev_abs, kLayerHead);
    if (!r.attributed) return;
    out.write("logit_sum", logit, {"layer", "head", "relative_offset"});
    out.write("chunk_logit_sum", chunk_logit, {"layer", "head", "relative_offset", "freq"});
    out.set_attr("chunk_logit_sum", "description",
                 "sufficient statistic: per chunk, the logit at each offset summed over queries "
                 "and sequences (frequency_share = chunk_logit_sum / logit_sum at the offset)");
}

PositionalHeads read_positional_heads(const H5Input& in) {
    PositionalHeads r;
    r.options = stored_options(in);
    for (std::int64_t l : in.read_int64("layer").data) r.layers.push_back(std::size_t(l));
    r.attributed = in.has("frequency_share");
    require_statistics(in, r.attributed);
    const Tensor<double> mass_sum = in.read_double("mass_sum"),
                         mass_min = in.read_double("mass_min"),
                         prev_mul = in.read_double("prev_mul_sum"),
                         prev_abs = in.read_double("prev_abs_sum");
    const std::size_t K = r.options.max_offset + 1;
    r.heads = mass_sum.shape.at(1);
    r.frequencies = r.attributed ? in.info("chunk_logit_sum").shape.at(3) : 0;
    r.sequences = static_cast<std::size_t>(required_attr(in, "sequences"));
    r.tokens = static_cast<std::size_t>(required_attr(in, "tokens"));
    r.source = in.attr_string("/", "source").value_or("");
    if (in.has("layer_frequency")) r.layer_frequency = in.read_double("layer_frequency");
    if (r.options.from == HeadSource::qk) r.logit_scale = required_attr(in, "attn_scale");
    Tensor<double> logit, chunk_logit;
    if (r.attributed) {
        logit = in.read_double("logit_sum");
        chunk_logit = in.read_double("chunk_logit_sum");
    }
    for (std::size_t i = 0; i < r.layers.size() * r.heads; ++i) {
        PositionalHeadResult res;
        HeadStatistics& a = res.statistics;
        a.mass_sum.assign(&mass_sum.data[i * K], &mass_sum.data[(i + 1) * K]);
        a.mass_min.assign(&mass_min.data[i * K], &mass_min.data[(i + 1) * K]);
        a.prev_mul = prev_mul.data[i];
        a.prev_abs = prev_abs.data[i];
        if (r.attributed) {
            a.logit.assign(&logit.data[i * K], &logit.data[(i + 1) * K]);
            for (std::size_t o = 0; o < K; ++o) {
                const double* row = &chunk_logit.data[(i * K + o) * r.frequencies];
                a.chunk_logit.emplace_back(row, row + r.frequencies);
            }
        }
        r.results.push_back(std::move(res));
    }
    finish_positional_heads(r);
    return r;
}

std::size_t positional_head_sequences(const DumpReader& dump, HeadSource from) {
    const std::size_t layer = positional_head_layers(dump, from).front();
    if (from == HeadSource::pattern) return dump.pattern_shape(layer, Hook::pattern).batch;
    return dump.vector_shape(layer, dump.has(layer, Hook::rot_q) ? Hook::rot_q : Hook::q).batch;
}

namespace {

void add(std::vector<double>& total, const std::vector<double>& part) {
    for (std::size_t i = 0; i < total.size(); ++i) total[i] += part[i];
}

void add_statistics(HeadStatistics& total, const HeadStatistics& part) {
    add(total.mass_sum, part.mass_sum);
    for (std::size_t o = 0; o < total.mass_min.size(); ++o) {
        total.mass_min[o] = std::min(total.mass_min[o], part.mass_min[o]);
    }
    total.prev_mul += part.prev_mul;
    total.prev_abs += part.prev_abs;
    add(total.logit, part.logit);
    for (std::size_t o = 0; o < total.chunk_logit.size(); ++o) {
        add(total.chunk_logit[o], part.chunk_logit[o]);
    }
}

// Every number of a head's statistics in one fixed order, for pack and unpack alike.
template <typename Visit>
void visit_statistics(HeadStatistics& a, Visit&& visit) {
    for (double& v : a.mass_sum) visit(v);
    for (double& v : a.mass_min) visit(v);
    visit(a.prev_mul);
    visit(a.prev_abs);
    for (double& v : a.logit) visit(v);
    for (auto& row : a.chunk_logit)
        for (double& v : row) visit(v);
}

}  // namespace

void add_positional_heads(PositionalHeads& total, const PositionalHeads& part) {
    for (std::size_t h = 0; h < total.results.size(); ++h) {
        add_statistics(total.results[h].statistics, part.results[h].statistics);
    }
    total.sequences += part.sequences;
}

std::vector<double> pack_positional_heads(const PositionalHeads& r) {
    std::vector<double> packed;
    for (PositionalHeadResult res : r.results) {
        visit_statistics(res.statistics, [&](double& v) { packed.push_back(v); });
    }
    packed.push_back(static_cast<double>(r.sequences));
    return packed;
}

PositionalHeads unpack_positional_heads(const PositionalHeads& like,
                                        const std::vector<double>& packed) {
    PositionalHeads r = like;
    std::size_t i = 0;
    for (PositionalHeadResult& res : r.results) {
        visit_statistics(res.statistics, [&](double& v) { v = packed.at(i++); });
    }
    r.sequences = static_cast<std::size_t>(packed.at(i));
    return r;
}

void finish_positional_heads(PositionalHeads& r) {
    const std::size_t F = r.attributed ? r.frequencies : 0;
    for (std::size_t i = 0; i < r.results.size(); ++i) {
        HeadStatistics statistics = std::move(r.results[i].statistics);
        Tensor<float> picture = std::move(r.results[i].picture);
        r.results[i] = finish_head(statistics, r.sequences, r.options.epsilon, F);
        r.results[i].picture = std::move(picture);
        r.results[i].layer = r.layers[i / r.heads];
        r.results[i].head = i % r.heads;
        r.results[i].statistics = std::move(statistics);
    }
}

}  // namespace ropekit
