// freq-norms' sufficient statistics: read back from an output (rope-merge), added, and packed
// for a reduction between processes (the MPI build).
#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include "ropekit/analysis/freq_norms.hpp"
#include "ropekit/core/enum_names.hpp"
#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

double required_attr(const H5Input& in, const std::string& name) {
    const std::optional<double> value = in.attr_double("/", name);
    if (!value || !std::isfinite(*value)) {
        throw data_error(in.name(), "/@" + name,
                         "expected a number (is this a freq-norms output?)");
    }
    return *value;
}

std::size_t required_count(const H5Input& in, const std::string& name) {
    const double value = required_attr(in, name);
    if (value < 0 || value != std::floor(value)) {
        throw data_error(in.name(), "/@" + name, "expected a whole number >= 0");
    }
    return static_cast<std::size_t>(value);
}

Schedule stored_schedule(const H5Input& in) {
    Schedule s;
    s.head_dim = required_count(in, "head_dim");
    s.rotary_dim = required_count(in, "rotary_dim");
    const std::string layout = in.attr_string("/", "rope_layout").value_or("");
    const std::optional<Layout> parsed = find_enum(kLayoutNames, layout);
    if (!parsed) throw data_error(in.name(), "/@rope_layout", "expected 'half' or 'interleaved'");
    s.layout = *parsed;
    if (in.has("layer_frequency")) {
        const Tensor<double> table = in.read_double("layer_frequency");
        s.inv_freq.assign(table.data.begin(),
                          table.data.begin() + static_cast<std::ptrdiff_t>(table.shape.at(1)));
    } else if (in.has("frequency")) {
        s.inv_freq = in.read_double("frequency").data;
    }
    return s;
}

}  // namespace

std::size_t freq_norms_sequences(const DumpReader& dump, bool queries) {
    const std::size_t layer = freq_norms_layers(dump, queries).front();
    for (Hook hook : queries ? std::vector<Hook>{Hook::q, Hook::rot_q}
                             : std::vector<Hook>{Hook::k, Hook::rot_k}) {
        if (dump.has(layer, hook)) return dump.vector_shape(layer, hook).batch;
    }
    return 0;
}

void add_freq_norms(FreqNorms& total, const FreqNorms& part) {
    for (int which = 0; which < 2; ++which) {
        Tensor<double>& sums = which == 0 ? total.q.sums : total.k.sums;
        const Tensor<double>& more = which == 0 ? part.q.sums : part.k.sums;
        for (std::size_t i = 0; i < sums.size(); ++i) sums.data[i] += more.data[i];
        Tensor<double>& unrotated = which == 0 ? total.q.unrotated_sums : total.k.unrotated_sums;
        const Tensor<double>& extra = which == 0 ? part.q.unrotated_sums : part.k.unrotated_sums;
        for (std::size_t i = 0; i < unrotated.size(); ++i) unrotated.data[i] += extra.data[i];
    }
    total.positions += part.positions;
}

namespace {
// The sums a result is made of, in packing order (FreqNorms or const FreqNorms).
template <class Result>
auto summed_tensors(Result& r) {
    return std::array{&r.q.sums, &r.k.sums, &r.q.unrotated_sums, &r.k.unrotated_sums};
}
}  // namespace

std::vector<double> pack_freq_norms(const FreqNorms& r) {
    std::vector<double> packed;
    for (const Tensor<double>* t : summed_tensors(r)) {
        packed.insert(packed.end(), t->data.begin(), t->data.end());
    }
    packed.push_back(static_cast<double>(r.positions));
    return packed;
}

FreqNorms unpack_freq_norms(const FreqNorms& like, const std::vector<double>& packed) {
    FreqNorms r = like;
    std::size_t at = 0;
    for (Tensor<double>* t : summed_tensors(r)) {
        if (at + t->size() + 1 > packed.size()) {
            throw std::logic_error("unpack_freq_norms: wrong size");
        }
        std::copy_n(packed.begin() + static_cast<std::ptrdiff_t>(at), t->size(), t->data.begin());
        at += t->size();
    }
    if (at + 1 != packed.size()) throw std::logic_error("unpack_freq_norms: wrong size");
    r.positions = static_cast<std::size_t>(packed.back());
    return r;
}

FreqNorms read_freq_norms(const H5Input& in, FreqNormsOptions& options) {
    FreqNorms r;
    for (std::int64_t layer : in.read_int64("layer").data) {
        r.layers.push_back(static_cast<std::size_t>(layer));
    }
    r.schedule = stored_schedule(in);
    if (in.has("layer_frequency")) {
        r.layer_frequency = in.read_double("layer_frequency");
    } else if (!r.schedule.inv_freq.empty()) {  // written before layer_frequency existed
        r.layer_frequency = Tensor<double>({r.layers.size(), r.schedule.inv_freq.size()});
        for (std::size_t l = 0; l < r.layers.size(); ++l) {
            std::copy(r.schedule.inv_freq.begin(), r.schedule.inv_freq.end(),
                      &r.layer_frequency({l, 0}));
        }
    }
    r.positions = required_count(in, "positions_averaged");
    options.exclude_bos = required_count(in, "exclude_bos") != 0;
    options.band_ratio = required_attr(in, "band_ratio");
    options.queries = in.has("q_norms");
    options.keys = in.has("k_norms");
    for (int which = 0; which < 2; ++which) {
        const std::string name = which == 0 ? "q" : "k";
        if (!in.has(name + "_norms")) continue;
        if (!in.has(name + "_norm_sums")) {
            throw data_error(in.name(), name + "_norm_sums",
                             "no such dataset: rerun freq-norms (older versions did not store "
                             "the sums rope-merge adds)");
        }
        TensorNorms& t = which == 0 ? r.q : r.k;
        t.dataset_hook = in.attr_string(name + "_norms", "source").value_or("");
        t.sums = in.read_double(name + "_norm_sums");
        if (in.has(name + "_unrotated_norm_sums")) {
            t.unrotated_sums = in.read_double(name + "_unrotated_norm_sums");
        }
    }
    finish_freq_norms(r);
    return r;
}

}  // namespace ropekit
