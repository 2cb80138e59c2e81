// freq-norms: which RoPE frequencies each head uses (paper Section 4, Figures 3 and 4).
#include <iostream>

#include "ropekit/analysis/freq_norms.hpp"
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/dump_options.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/core/output_path.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("freq-norms",
              "Mean 2-norm of every 2-D RoPE chunk of the queries and keys of an activation dump, "
              "over batch and positions, per layer and head (frequency index 0 = highest). By "
              "Cauchy-Schwarz these norms bound how much each frequency can contribute to a "
              "logit: the paper's Figures 3 and 4. Prints per head the share of norm in the "
              "highest quarter of frequencies and its low-frequency 'bands'. Reads the dump "
              "one layer and one sequence at a time.");
    std::string input, tensor = "both", layers = "all", plot;
    FreqNormsOptions options;
    DumpCliOptions dump_options;
    auto& app = tool.app();
    app.add_option("dump", input, "Activation dump (HDF5, '-' = stdin; docs/formats.md)");
    tool.with_output(false);
    tool.reads_hdf5();
    tool.single_threaded("it is bound by reading the dump, and two threads measured slower");
    app.add_option("--tensor", tensor, "q | k | both")->capture_default_str();
    app.add_flag("--exclude-bos", options.exclude_bos,
                 "Leave out position 0 of every sequence (its BOS vectors are outliers)");
    app.add_option("--layers", layers, "Layers to read: all, 3, 0-3,7, -1 (last)")
        ->capture_default_str();
    app.add_option("--band-ratio", options.band_ratio,
                   "A lower-half chunk is a 'band' when its norm is at least this many times the "
                   "median lower-half norm of both its layer and its head")
        ->capture_default_str();
    app.add_option("--plot", plot,
                   "Write SVG heatmaps PREFIX-{q,k}-layers.svg (Figure 3) and "
                   "PREFIX-{q,k}-layer{L}.svg (Figure 4) with frequency on y, highest at the top");
    dump_options.add_to(app);
    tool.examples(
        "  freq-norms dump.h5 -o norms.h5 --plot fig/norms      # Figures 3 and 4 as SVG\n"
        "  freq-norms dump.h5 --tensor q --layers 0,-1 --exclude-bos -o q.h5\n"
        "  freq-norms cache.h5 --name q=model.layers.{layer}.q --axes pos,head,dim --tensor q -o "
        "n.h5\n"
        "  make-demo-dump -o - | freq-norms - -o - | rope-plot -:layer_q_norms -o fig3.svg\n");
    return tool.run(argc, argv, [&] {
        if (input.empty()) throw usage_error("DUMP is required (see --help)");
        if (tensor != "q" && tensor != "k" && tensor != "both") {
            throw usage_error("--tensor: expected q, k or both, got '" + tensor + "'");
        }
        options.queries = tensor != "k";
        options.keys = tensor != "q";
        if (!(options.band_ratio > 1)) throw usage_error("--band-ratio must be > 1");
        check_output_path(tool.output(), tool.force(), {input});
        const H5Input in = H5Input::open(input);
        const std::optional<Hook> primary;
        const DumpReader dump = dump_options.open(
            in,
            tensor == "both" ? primary : std::optional<Hook>(options.queries ? Hook::q : Hook::k));
        if (auto note = bos_note(dump.attributes(), options.exclude_bos); !note.empty()) {
            tool.note("{}", note);
        }
        const std::vector<std::size_t> all = dump.layers(options.queries ? Hook::q : Hook::k);
        if (!all.empty()) options.layers = parse_index_spec(layers, all.size(), "--layers");
        const FreqNorms result = compute_freq_norms(
            dump, options, [&](const std::string& line) { tool.note("{}", line); });

        // Every figure: (path, heatmap). Paths are checked before anything is written.
        std::vector<std::pair<std::string, Heatmap>> figures;
        for (bool queries : {true, false}) {
            if (plot.empty() || (queries ? result.q : result.k).norms.size() == 0) continue;
            const std::string t = queries ? "q" : "k";
            figures.emplace_back(plot + "-" + t + "-layers.svg",
                                 layer_norms_figure(result, queries));
            for (std::size_t row = 0; row < result.layers.size(); ++row) {
                figures.emplace_back(
                    plot + "-" + t + "-layer" + std::to_string(result.layers[row]) + ".svg",
                    head_norms_figure(result, queries, row));
            }
        }
        for (const auto& figure : figures) check_output_path(figure.first, tool.force(), {input});

        H5Output out = H5Output::create(tool.output(), tool.write_options({input}));
        write_freq_norms(out, result, options);
        write_dump_attributes(out, dump.attributes());
        out.commit(tool.name(), tool.command_line(), in.history());
        for (const auto& [path, heatmap] : figures) {
            write_text_output(path, render_heatmap(heatmap), tool.force(), {input});
        }
        if (!figures.empty()) tool.note("wrote {} figures {}-*.svg", figures.size(), plot);
        // The table goes to stdout unless stdout carries the HDF5 output.
        const std::string summary = freq_norms_summary(result, options.band_ratio);
        if (tool.output() != "-") {
            std::cout << summary;
        } else if (!tool.quiet()) {
            std::cerr << summary;
        }
    });
}
