#pragma once
// The command-line contract, in one place, for every tool:
//   shared options -o/--output, --force, --threads, -q/--quiet, --version;
//   --help on stdout with an Examples section; exit 0 success, 1 data/runtime error, 2 usage,
//   3 a check that ran and failed; one error line "tool: file: dataset: what was expected" on
//   stderr, after flushing stdout.
// A tool's main declares its options into a command struct, then run() parses argv and makes
// the one library call that does the work, with context() for its output and notes.
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ropekit/core/run_context.hpp"

namespace ropekit {

class Tool {
  public:
    Tool(std::string name, const std::string& description);

    CLI::App& app() { return app_; }

    // Text after "Examples:" in --help; show at least one pipe.
    Tool& examples(const std::string& text);
    // For tools that do not use threads: --threads is still accepted, and its help says why
    // it has no effect.
    Tool& single_threaded(const std::string& why);
    // Adds -o/--output, required, and --force.
    Tool& with_output();
    // The same for a tool whose output is optional (its table goes to stdout either way).
    Tool& with_optional_output();
    // For tools that read HDF5 inputs: adds --allow-external (allow_external_hdf5).
    Tool& reads_hdf5();
    // For tools that read dumps: adds --bf16 (16-bit integer datasets are bf16 bits,
    // read_int16_as_bf16), and names it in the error for an unmarked one.
    Tool& reads_bf16_bits();
    // -o writes text (SVG), which may go to a terminal; HDF5 outputs (the default) may not.
    Tool& writes_text();

    // Marks an option or positional argument as required: "NAME is required (see --help)".
    // Not CLI11's required(): CLI11 2.1 reports a missing required option before an unknown
    // one, which hides the user's real mistake; run() checks these after parsing instead.
    CLI::Option* require(CLI::Option* option);
    // The same for "one of these": `what` names them in the error ("one of --a or --b").
    void require_one_of(std::vector<const CLI::Option*> options, const std::string& what);

    // For the library call: -o, --force, provenance, and --quiet applied to notes and tables.
    RunContext context() const;

    // Parses argv, applies --threads, runs body, maps every error to its exit code.
    int run(int argc, char** argv, const std::function<void()>& body);

  private:
    struct Requirement {
        std::vector<const CLI::Option*> one_of;
        std::string what;
    };
    Tool& add_output(bool required);
    void note(const std::string& line) const;
    void print(const std::string& text) const;
    void report(const std::string& message) const;
    int parse_and_run(int argc, char** argv, const std::function<void()>& body);
    int run_body(const std::function<void()>& body);

    std::string name_;
    CLI::App app_;
    std::string output_;
    bool force_ = false;
    bool quiet_ = false;
    bool text_output_ = false;
    int threads_ = 0;
    std::vector<Requirement> required_;
    std::string command_line_;
};

// "rope-decay (ropekit 0.1.0)\nHDF5 1.10.8\nOpenBLAS 0.3.21 ..."
std::string version_text(const std::string& tool);

}  // namespace ropekit
