#include "ropekit/analysis/positional_heads.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/merge/tool_mergers_internal.hpp"

namespace ropekit {
namespace {

void merge_positional_heads(const std::vector<H5Input>& files, const RunContext& context,
                            const std::vector<std::string>& inputs) {
    PositionalHeads total = read_positional_heads(files.front());
    for (std::size_t i = 1; i < files.size(); ++i) {
        add_positional_heads(total, read_positional_heads(files[i]));
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
    return {{"find-positional-heads", {"sequences"}, {"layer", "layer_frequency"}, {}},
            merge_positional_heads};
}

}  // namespace ropekit
