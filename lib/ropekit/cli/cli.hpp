#pragma once
// The command-line contract, in one place, for every tool:
//   shared options -o/--output, --force, --threads, -q/--quiet, --version;
//   --help on stdout with an Examples section; exit 0 success, 1 data/runtime error, 2 usage;
//   one error line "tool: file: dataset: what was expected" on stderr, after flushing stdout.
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "ropekit/core/output_path.hpp"

namespace ropekit {

class Tool {
  public:
    Tool(std::string name, const std::string& description);

    CLI::App& app() { return app_; }
    const std::string& name() const { return name_; }

    // Text after "Examples:" in --help; show at least one pipe.
    Tool& examples(const std::string& text);
    // For tools that do not use threads: --threads is still accepted, and its help says why
    // it has no effect.
    Tool& single_threaded(const std::string& why);
    // Adds -o/--output (required unless `required` is false) and --force.
    Tool& with_output(bool required = true);
    // For tools that read HDF5 inputs: adds --allow-external (allow_external_hdf5).
    Tool& reads_hdf5();

    const std::string& output() const { return output_; }
    bool force() const { return force_; }
    bool quiet() const { return quiet_; }
    // The options an H5Output (or any other writer) needs, refusing to overwrite `inputs`.
    WriteOptions write_options(std::vector<std::string> inputs) const;
    // argv as a shell would re-read it: recorded as provenance.
    const std::string& command_line() const { return command_line_; }

    // A progress or status line on stderr, unless --quiet.
    template <class... Args>
    void note(fmt::format_string<Args...> format, Args&&... args) const {
        if (!quiet_) print_note(fmt::format(format, std::forward<Args>(args)...));
    }

    // Parses argv, applies --threads, runs body, maps every error to its exit code.
    int run(int argc, char** argv, const std::function<void()>& body);

  private:
    void print_note(const std::string& line) const;
    void report(const std::string& message) const;
    int parse_and_run(int argc, char** argv, const std::function<void()>& body);
    int run_body(const std::function<void()>& body);

    std::string name_;
    CLI::App app_;
    std::string output_;
    bool force_ = false;
    bool output_required_ = false;
    bool quiet_ = false;
    int threads_ = 0;
    std::string command_line_;
};

// "rope-decay (ropekit 0.1.0)\nHDF5 1.10.8\nOpenBLAS 0.3.21 ..."
std::string version_text(const std::string& tool);

}  // namespace ropekit
