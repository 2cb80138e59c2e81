#include "ropekit/plot/plot_dataset_run.hpp"

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"

namespace ropekit {

void run_plot_dataset(const PlotDatasetCommand& command, const RunContext& context) {
    if (!command.stdin_dataset.empty() && !command.input.empty()) {
        throw usage_error("give one input: FILE[:DATASET] or -:DATASET");
    }
    auto [file, dataset] = split_file_dataset(
        command.stdin_dataset.empty() ? command.input : "-:" + command.stdin_dataset);
    DatasetPlotOptions options = command.options;
    options.kind = parse_plot_kind(command.kind);
    if (command.index >= 0) options.index = static_cast<std::size_t>(command.index);
    check_output_path(context.output, context.force, {file});
    const H5Input in = H5Input::open(file);
    if (dataset.empty()) dataset = default_plot_dataset(in);
    if (!in.has(dataset)) throw data_error(in.name(), dataset, "no such dataset");
    write_text_output(context.output, plot_dataset(in, dataset, options), context.force, {file});
    context.note(fmt::format("wrote {} ({} from {})", context.output, dataset, in.name()));
}

}  // namespace ropekit
