#include "ropekit/analysis/freq_norms_run.hpp"

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

// Figure 3 (PREFIX-q-layers.svg) and Figure 4 per layer (PREFIX-q-layer{L}.svg), keys alike.
std::vector<FigureFile> freq_norms_figures(const FreqNorms& result, const std::string& prefix) {
    std::vector<FigureFile> figures;
    for (bool queries : {true, false}) {
        if (prefix.empty() || (queries ? result.q : result.k).norms.size() == 0) continue;
        const std::string t = queries ? "q" : "k";
        figures.push_back({prefix + "-" + t + "-layers.svg", layer_norms_figure(result, queries)});
        for (std::size_t row = 0; row < result.layers.size(); ++row) {
            figures.push_back({fmt::format("{}-{}-layer{}.svg", prefix, t, result.layers[row]),
                               head_norms_figure(result, queries, row)});
        }
    }
    return figures;
}

FreqNormsOptions checked_options(const FreqNormsCommand& command) {
    FreqNormsOptions options = command.options;
    const NormedTensors tensors = parse_enum(kNormedTensorNames, command.tensor, "--tensor");
    options.queries = tensors != NormedTensors::k;
    options.keys = tensors != NormedTensors::q;
    if (!(options.band_ratio > 1)) throw usage_error("--band-ratio must be > 1");
    return options;
}

// The other parts' statistics added to this part's, in part order (part 0 only).
void add_other_parts(FreqNorms& result, const WorkShare& share) {
    const std::vector<std::vector<double>> parts = share.gather(pack_freq_norms(result));
    for (std::size_t p = 1; p < parts.size(); ++p) {
        add_freq_norms(result, unpack_freq_norms(result, parts[p]));
    }
    finish_freq_norms(result);
}

}  // namespace

void run_freq_norms(const FreqNormsCommand& command, const RunContext& context,
                    const WorkShare& share) {
    FreqNormsOptions options = checked_options(command);
    const std::vector<std::string> inputs = expand_dump_paths(command.inputs);
    if (!context.output.empty()) check_file_output(context.output, context.force, inputs);
    check_figure_prefix(command.plot);
    const std::vector<H5Input> files = open_dump_files(inputs);
    const bool both = options.queries && options.keys;
    DumpReader dump =
        open_dump(files, command.dump,
                  both ? std::nullopt : std::optional<Hook>(options.queries ? Hook::q : Hook::k));
    if (auto note = bos_note(dump.attributes(), options.exclude_bos); !note.empty()) {
        context.note(note);
    }
    // The same layers the computation reads, post-RoPE hooks included.
    options.layers = parse_index_spec(command.layers,
                                      freq_norms_layers(dump, options.queries).size(), "--layers");
    const auto [first, count] = share.sequences(freq_norms_sequences(dump, options.queries));
    dump.restrict_sequences(first, count);
    FreqNorms result = compute_freq_norms(dump, options, [&](std::size_t done, std::size_t total) {
        context.progress(done, total, "layers");
    });
    if (share.gather) {
        add_other_parts(result, share);
        if (!share.writes()) return;
    }

    const std::vector<FigureFile> figures = freq_norms_figures(result, command.plot);
    check_figure_paths(figures, context, inputs);
    OutputBatch batch;
    std::optional<H5Output> out;
    if (!context.output.empty()) {
        out = H5Output::create(context.output, context.write_options(inputs));
        write_freq_norms(*out, result, options);
        write_dump_attributes(*out, dump.attributes());
        out->finish_into(batch, context.tool, context.command_line, files.front().history());
    }
    add_figures(batch, figures, context, inputs);
    batch.commit();
    if (!figures.empty()) {
        context.note(fmt::format("wrote {} figures {}-*.svg", figures.size(), command.plot));
    }
    context.print(freq_norms_summary(result, options.band_ratio));
}

}  // namespace ropekit
