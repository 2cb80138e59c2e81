#include <algorithm>

#include "ropekit/analysis/positional_heads.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/merge/tool_mergers_internal.hpp"

namespace ropekit {
namespace {

void add(std::vector<double>& total, const std::vector<double>& part) {
    for (std::size_t i = 0; i < total.size(); ++i) total[i] += part[i];
}

// NaN marks offsets too long for the sequences; they are the same in every part.
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

void merge_positional_heads(const std::vector<H5Input>& files, const RunContext& context,
                            const std::vector<std::string>& inputs) {
    PositionalHeads total = read_positional_heads(files.front());
    for (std::size_t i = 1; i < files.size(); ++i) {
        const PositionalHeads part = read_positional_heads(files[i]);
        for (std::size_t h = 0; h < total.results.size(); ++h) {
            add_statistics(total.results[h].statistics, part.results[h].statistics);
        }
        total.sequences += part.sequences;
    }
    finish_positional_heads(total);
    H5Output out = H5Output::create(context.output, context.write_options(inputs));
    write_positional_heads(out, total);
    write_dump_attributes(out, read_dump_attributes(files.front()));
    out.commit("find-positional-heads", context.command_line, files.front().history());
    context.print(heads_table_tsv(total));
}

}  // namespace

ToolMerger positional_heads_merger() {
    return {{"find-positional-heads", {"sequences"}, {"layer"}}, merge_positional_heads};
}

}  // namespace ropekit
