#include "ropekit/analysis/positional_heads_run.hpp"

#include <optional>
#include <vector>

#include <fmt/format.h>

#include "ropekit/analysis/figure_files.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/core/output_path.hpp"

namespace ropekit {
namespace {

// The overview (PREFIX-mass.svg) and Figure 5 for each positional head (PREFIX-L{l}H{h}.svg).
std::vector<FigureFile> positional_heads_figures(const PositionalHeads& result,
                                                 const std::string& prefix) {
    std::vector<FigureFile> figures;
    if (prefix.empty()) return figures;
    figures.push_back({prefix + "-mass.svg", mass_figure(result)});
    for (const PositionalHeadResult& h : result.results) {
        if (!h.positional) continue;
        figures.push_back({fmt::format("{}-L{}H{}.svg", prefix, h.layer, h.head),
                           pattern_figure(h, result.source)});
    }
    return figures;
}

PositionalOptions checked_options(const PositionalHeadsCommand& command) {
    PositionalOptions options = command.options;
    options.from = parse_enum(kHeadSourceNames, command.from, "--from");
    if (!(options.epsilon > 0 && options.epsilon < 1)) {
        throw usage_error("--epsilon must be in (0, 1)");
    }
    return options;
}

}  // namespace

void run_find_positional_heads(const PositionalHeadsCommand& command, const RunContext& context) {
    PositionalOptions options = checked_options(command);
    const HeadsTableFormat format = parse_enum(kHeadsTableFormatNames, command.format, "--format");
    const std::vector<std::string> inputs{command.input};
    if (!context.output.empty()) check_file_output(context.output, context.force, inputs);
    check_figure_prefix(command.plot);
    const H5Input in = H5Input::open(command.input);
    const bool from_pattern = options.from == HeadSource::pattern;
    const DumpReader dump = open_dump(
        in, command.dump, from_pattern ? std::optional<Hook>(Hook::pattern) : std::nullopt);
    options.logit_scale = logit_scale_choice(command.scale, dump.attributes());
    if (auto note = bos_note(dump.attributes(), options.exclude_bos); !note.empty()) {
        context.note(note);
    }
    options.layers = parse_index_spec(
        command.layers, positional_head_layers(dump, options.from).size(), "--layers");
    const PositionalHeads result = find_positional_heads(dump, options, context.note);

    const std::vector<FigureFile> figures = positional_heads_figures(result, command.plot);
    check_figure_paths(figures, context, inputs);
    OutputBatch batch;
    std::optional<H5Output> out;
    if (!context.output.empty()) {
        out = H5Output::create(context.output, context.write_options(inputs));
        write_positional_heads(*out, result);
        write_dump_attributes(*out, dump.attributes());
        out->finish_into(batch, context.tool, context.command_line, in.history());
    }
    add_figures(batch, figures, context, inputs);
    batch.commit();
    context.print(format == HeadsTableFormat::json ? heads_table_json(result)
                                                   : heads_table_tsv(result));
}

}  // namespace ropekit
