// find-positional-heads: heads that attend by position alone (paper Definition 5.1, Figure 5).
#include <iostream>

#include "ropekit/analysis/positional_heads.hpp"
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/dump_options.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/core/output_path.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool(
        "find-positional-heads",
        "Find the heads of an activation dump that attend by position alone (Definition "
        "5.1 of the RoPE paper): per head, the offset r whose attention mass A[i, i-r] is "
        "largest (0 = diagonal, 1 = previous token), that mass averaged over queries and "
        "sequences and its minimum over sequences, and 'positional' when the minimum is at "
        "least 1 - epsilon. Also TransformerLens's previous_token_head scores (mul, abs) and, "
        "when queries and keys are in the dump, the share of the logit at that offset carried "
        "by the highest quarter of frequencies. Prints a table; -o writes the same as HDF5.");
    std::string input, from = "pattern", scale = "auto", format = "tsv", layers = "all", plot;
    PositionalOptions options;
    DumpCliOptions dump_options;
    auto& app = tool.app();
    app.add_option("dump", input, "Activation dump (HDF5, '-' = stdin; docs/formats.md)");
    tool.with_output(false);
    tool.reads_hdf5();
    app.add_option("--from", from,
                   "pattern: read hook_pattern; qk: compute causal softmax attention from "
                   "hook_rot_q/hook_rot_k (or hook_q/hook_k rotated with the dump's schedule)")
        ->capture_default_str();
    app.add_option("--epsilon", options.epsilon,
                   "Positional when the mass is >= 1 - epsilon on every sequence")
        ->capture_default_str();
    app.add_option("--max-offset", options.max_offset, "Search offsets 0..K (tokens back)")
        ->capture_default_str();
    app.add_flag("--exclude-bos", options.exclude_bos,
                 "Ignore attention to position 0 (masses renormalised over the other keys; "
                 "TransformerLens's exclude_bos for prev_mul/prev_abs)");
    app.add_flag("--exclude-current-token", options.exclude_current_token,
                 "TransformerLens scores only: ignore the diagonal");
    app.add_option("--scale", scale,
                   "qk: logits = scale * q.k; auto = the dump's attn_scale attribute (rope-dump "
                   "and construct-key write it), else sqrt; sqrt = 1/sqrt(d_head) as models "
                   "do; none = 1, the paper's convention")
        ->check(CLI::IsMember({"auto", "sqrt", "none"}))
        ->capture_default_str();
    app.add_option("--format", format, "Table on stdout: tsv or json")->capture_default_str();
    app.add_option("--layers", layers, "Layers to read: all, 3, 0-3,7, -1 (last)")
        ->capture_default_str();
    app.add_option(
        "--plot", plot,
        "Write PREFIX-mass.svg (mass per layer and head) and PREFIX-L{l}H{h}.svg "
        "(Figure 5: the first 48 tokens of sequence 0's pattern) for each positional head");
    dump_options.add_to(app);
    tool.examples(
        "  find-positional-heads dump.h5                          # TSV table on stdout\n"
        "  find-positional-heads dump.h5 --from qk --scale none --epsilon 0.01 -o heads.h5\n"
        "  find-positional-heads dump.h5 --format json | jq '.[] | select(.positional)'\n"
        "  make-demo-dump -o - | find-positional-heads - --plot fig/heads | awk '$6 == 1'\n");
    return tool.run(argc, argv, [&] {
        if (input.empty()) throw usage_error("DUMP is required (see --help)");
        if (from != "pattern" && from != "qk")
            throw usage_error("--from: expected pattern or qk, got '" + from + "'");
        if (format != "tsv" && format != "json")
            throw usage_error("--format: expected tsv or json, got '" + format + "'");
        if (!(options.epsilon > 0 && options.epsilon < 1))
            throw usage_error("--epsilon must be in (0, 1)");
        options.from = from == "qk" ? HeadSource::qk : HeadSource::pattern;
        if (!tool.output().empty()) check_output_path(tool.output(), tool.force(), {input});
        const H5Input in = H5Input::open(input);
        const DumpReader dump = dump_options.open(in, options.from == HeadSource::pattern
                                                          ? std::optional<Hook>(Hook::pattern)
                                                          : std::nullopt);
        options.logit_scale = logit_scale_choice(scale, dump.attributes());
        if (auto note = bos_note(dump.attributes(), options.exclude_bos); !note.empty()) {
            tool.note("{}", note);
        }
        std::vector<std::size_t> all =
            dump.layers(options.from == HeadSource::pattern ? Hook::pattern : Hook::rot_q);
        if (all.empty() && options.from == HeadSource::qk) all = dump.layers(Hook::q);
        if (!all.empty()) options.layers = parse_index_spec(layers, all.size(), "--layers");
        const PositionalHeads result = find_positional_heads(
            dump, options, [&](const std::string& line) { tool.note("{}", line); });

        std::vector<std::pair<std::string, Heatmap>> figures;
        if (!plot.empty()) {
            figures.emplace_back(plot + "-mass.svg", mass_figure(result));
            for (const HeadResult& h : result.results) {
                if (!h.positional) continue;
                figures.emplace_back(fmt::format("{}-L{}H{}.svg", plot, h.layer, h.head),
                                     pattern_figure(h, result.source));
            }
        }
        for (const auto& figure : figures) check_output_path(figure.first, tool.force(), {input});
        if (!tool.output().empty()) {
            H5Output out = H5Output::create(tool.output(), tool.write_options({input}));
            write_positional_heads(out, result);
            write_dump_attributes(out, dump.attributes());
            out.commit(tool.name(), tool.command_line(), in.history());
        }
        for (const auto& [path, heatmap] : figures)
            write_text_output(path, render_heatmap(heatmap), tool.force(), {input});
        const std::string table =
            format == "json" ? heads_table_json(result) : heads_table_tsv(result);
        if (tool.output() != "-") {
            std::cout << table;
        } else if (!tool.quiet()) {
            std::cerr << table;
        }
    });
}
