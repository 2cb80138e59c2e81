#include "ropekit/analysis/freq_norms.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/merge/tool_mergers_internal.hpp"

namespace ropekit {
namespace {

void merge_freq_norms(const std::vector<H5Input>& files, const RunContext& context,
                      const std::vector<std::string>& inputs) {
    FreqNormsOptions options;
    FreqNorms total = read_freq_norms(files.front(), options);
    for (std::size_t i = 1; i < files.size(); ++i) {
        FreqNormsOptions part_options;
        add_freq_norms(total, read_freq_norms(files[i], part_options));
    }
    finish_freq_norms(total);
    H5Output out = H5Output::create(context.output, context.write_options(inputs));
    write_freq_norms(out, total, options);
    write_dump_attributes(out, read_dump_attributes(files.front()));
    out.commit("freq-norms", context.command_line, files.front().history());
    context.print(freq_norms_summary(total, options.band_ratio));
}

}  // namespace

ToolMerger freq_norms_merger() {
    return {{"freq-norms", {"positions_averaged"}, {"layer", "frequency", "layer_frequency"}, {}},
            merge_freq_norms};
}

}  // namespace ropekit
