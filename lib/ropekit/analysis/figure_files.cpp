#include "ropekit/analysis/figure_files.hpp"

#include <filesystem>

#include "ropekit/core/output_path.hpp"

namespace ropekit {

void check_figure_paths(const std::vector<FigureFile>& figures, const RunContext& context,
                        const std::vector<std::string>& inputs) {
    for (const FigureFile& figure : figures) check_output_path(figure.path, context.force, inputs);
}

void add_figures(OutputBatch& batch, const std::vector<FigureFile>& figures,
                 const RunContext& context, const std::vector<std::string>& inputs) {
    for (const FigureFile& figure : figures) {
        batch.add_text(figure.path, render_heatmap(figure.heatmap), context.force, inputs);
    }
}

void check_figure_prefix(const std::string& prefix) {
    if (prefix.empty()) return;
    const std::filesystem::path folder =
        std::filesystem::path(prefix + "-figure.svg").parent_path();
    check_output_directory(folder.empty() ? "." : folder.string(), prefix + "-*.svg");
}

}  // namespace ropekit
