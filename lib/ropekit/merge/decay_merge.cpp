#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/merge/tool_mergers_internal.hpp"

namespace ropekit {
namespace {

// Only the sampled modes store sums; --check's spread test needs a per-sample pass that does not.
void check_decay_part(const H5Input& file) {
    const DecayParams params = read_decay_params(file);
    if (params.mode != DecayMode::gaussian && params.mode != DecayMode::file) {
        throw data_error(file.name(), "/@mode",
                         fmt::format("mode {} is a closed form with no samples to merge; "
                                     "rope-merge merges gaussian and file modes",
                                     decay_mode_name(params.mode)));
    }
    if (file.attr("/", "check_passed")) {
        throw data_error(file.name(), "/@check_passed",
                         "made with --check, whose spread test does not merge; merge outputs "
                         "made without --check");
    }
}

// Gaussian mode: the parts' sample ranges, in order, must tile one range (no pair twice, none
// missing), which is then the merged output's. Returns its first sample.
std::size_t tiled_first_sample(const std::vector<H5Input>& files) {
    std::vector<std::size_t> order(files.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::vector<std::size_t> first(files.size()), count(files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
        first[i] = read_decay_params(files[i]).first_sample;
        count[i] = static_cast<std::size_t>(files[i].attr_double("/", "samples").value_or(0));
    }
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return first[a] < first[b]; });
    for (std::size_t i = 1; i < order.size(); ++i) {
        const std::size_t prev = order[i - 1], next = order[i];
        const std::size_t expected = first[prev] + count[prev];
        if (first[next] != expected) {
            throw data_error(
                files[next].name(), "/@first_sample",
                fmt::format("expected {} after {}'s samples {}..{} (the parts' sample ranges "
                            "must tile one range, no pair twice), found {}",
                            expected, files[prev].name(), first[prev], expected - 1, first[next]));
        }
    }
    return first[order.front()];
}

void merge_decay(const std::vector<H5Input>& files, const RunContext& context,
                 const std::vector<std::string>& inputs) {
    DecayParams params = read_decay_params(files.front());
    if (params.mode == DecayMode::gaussian) params.first_sample = tiled_first_sample(files);
    const Schedule s = decay_schedule(params);
    DecayMoments total = read_decay_moments(files.front(), s);
    for (std::size_t i = 1; i < files.size(); ++i) merge(total, read_decay_moments(files[i], s));
    const std::vector<std::int64_t> offsets = files.front().read_int64("offset").data;
    const DecayCurve curve = finish(total, s, offsets);
    H5Output out = H5Output::create(context.output, context.write_options(inputs));
    write_decay(out, curve, params);
    write_decay_moments(out, total);
    out.commit("rope-decay", context.command_line, files.front().history());
}

}  // namespace

ToolMerger decay_merger() {
    return {{"rope-decay", {"samples", "first_sample"}, {"offset"}, {"std", "stderr"}},
            merge_decay,
            check_decay_part};
}

}  // namespace ropekit
