#include "ropekit/analysis/positional_heads_run.hpp"

#include <optional>
#include <vector>

#include <fmt/format.h>

#include "ropekit/analysis/figure_files.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/dump/dump_files.hpp"

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
    if (command.from != "auto") options.from = parse_enum(kHeadSourceNames, command.from, "--from");
    if (!(options.epsilon > 0 && options.epsilon < 1)) {
        throw usage_error("--epsilon must be in (0, 1)");
    }
    return options;
}

// The other parts' statistics added to this part's, in part order (part 0 only).
void add_other_parts(PositionalHeads& result, const WorkShare& share) {
    const std::vector<std::vector<double>> parts = share.gather(pack_positional_heads(result));
    for (std::size_t p = 1; p < parts.size(); ++p) {
        add_positional_heads(result, unpack_positional_heads(result, parts[p]));
    }
    finish_positional_heads(result);
}

// --from auto: the patterns when the dump has them, else q and k (a TransformerLens cache often
// holds only hook_q and hook_k). A plain --name TEMPLATE names patterns, as with --from pattern.
HeadSource chosen_source(const std::vector<H5Input>& files, const DumpOptions& dump_options) {
    const DumpReader dump = open_dump(files, dump_options, Hook::pattern);
    if (!dump.layers(Hook::pattern).empty()) return HeadSource::pattern;
    const bool has_vectors = !dump.layers(Hook::rot_q).empty() || !dump.layers(Hook::q).empty();
    return has_vectors ? HeadSource::qk : HeadSource::pattern;
}

// What --from auto assumed when it chose q and k, so that a reader can tell a wrong guess.
std::string qk_choice_note(const DumpReader& dump, const std::optional<double>& scale) {
    const DumpAttributes& a = dump.attributes();
    const bool rotated = !dump.layers(Hook::rot_q).empty();
    std::string rotation = "hook_rot_q and hook_rot_k (rotated already)";
    if (!rotated) {
        const std::string source = dump.frequency_source();
        rotation =
            fmt::format("hook_q and hook_k rotated with rope_layout {}{} and {}",
                        enum_name(kLayoutNames, a.rope_layout.value_or(Layout::half)),
                        a.rope_layout ? "" : " (the default: the dump has no rope_layout)",
                        !source.empty() ? "the frequencies the dump recorded (" + source + ")"
                        : a.rope_theta  ? fmt::format("theta {}", *a.rope_theta)
                                        : std::string("theta (none in the dump)"));
    }
    const std::string scaled =
        scale ? fmt::format("{} (the dump's attn_scale or --scale)", *scale) : "1/sqrt(head_dim)";
    return fmt::format(
        "{} has no attention patterns: computing them (--from qk) from {}, logits scaled by {}; "
        "pass --layout, --theta or --scale if that is not how the model ran",
        dump.input().name(), rotation, scaled);
}

}  // namespace

void run_find_positional_heads(const PositionalHeadsCommand& command, const RunContext& context,
                               const WorkShare& share) {
    PositionalOptions options = checked_options(command);
    const HeadsTableFormat format = parse_enum(kHeadsTableFormatNames, command.format, "--format");
    const std::vector<std::string> inputs = expand_dump_paths(command.inputs);
    if (!context.output.empty()) check_file_output(context.output, context.force, inputs);
    check_figure_prefix(command.plot);
    const std::vector<H5Input> files = open_dump_files(inputs);
    if (command.from == "auto") options.from = chosen_source(files, command.dump);
    const bool from_pattern = options.from == HeadSource::pattern;
    DumpReader dump = open_dump(files, command.dump,
                                from_pattern ? std::optional<Hook>(Hook::pattern) : std::nullopt);
    options.logit_scale = logit_scale_choice(command.scale, dump.attributes());
    if (command.from == "auto" && !from_pattern) {
        context.note(qk_choice_note(dump, options.logit_scale));
    }
    if (auto note = bos_note(dump.attributes(), options.exclude_bos); !note.empty()) {
        context.note(note);
    }
    options.layers = parse_index_spec(
        command.layers, positional_head_layers(dump, options.from).size(), "--layers");
    const auto [first, count] = share.sequences(positional_head_sequences(dump, options.from));
    dump.restrict_sequences(first, count);
    PositionalHeads result = find_positional_heads(
        dump, options,
        [&](std::size_t done, std::size_t total) { context.progress(done, total, "layers"); });
    if (share.gather) {
        add_other_parts(result, share);
        if (!share.writes()) return;
    }

    const std::vector<FigureFile> figures = positional_heads_figures(result, command.plot);
    check_figure_paths(figures, context, inputs);
    OutputBatch batch;
    std::optional<H5Output> out;
    if (!context.output.empty()) {
        out = H5Output::create(context.output, context.write_options(inputs));
        write_positional_heads(*out, result);
        write_dump_attributes(*out, dump.attributes());
        out->finish_into(batch, context.tool, context.command_line, files.front().history());
    }
    add_figures(batch, figures, context, inputs);
    batch.commit();
    context.print(format == HeadsTableFormat::json ? heads_table_json(result)
                                                   : heads_table_tsv(result));
}

}  // namespace ropekit
