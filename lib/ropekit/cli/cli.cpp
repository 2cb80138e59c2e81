#include "ropekit/cli/cli.hpp"

#include <cblas.h>
#include <fmt/format.h>
#include <hdf5.h>
#include <malloc.h>
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#endif
#elif defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <new>

#include "ropekit/cli/progress.hpp"
#include "ropekit/cli/terminal.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/interrupt.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/core/version.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

namespace {

std::string shell_quote(const std::string& arg) {
    if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_./:=,+@%") == std::string::npos) {
        return arg;
    }
    std::string quoted = "'";
    for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

}  // namespace

std::string version_text(const std::string& tool) {
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    return fmt::format("{} (ropekit {})\nHDF5 {}.{}.{}\n{} (core {}, {} threads)\n", tool, kVersion,
                       major, minor, release, openblas_get_config(), openblas_get_corename(),
                       thread_count());
}

Tool::Tool(std::string name, const std::string& description)
    : name_(std::move(name)), app_(description, name_) {
    silence_hdf5_errors();  // before any other HDF5 call
    app_.set_help_flag("-h,--help", "Print this help and exit");
    app_.add_flag_callback(
        "--version",
        [this] {
            std::cout << version_text(name_);
            throw CLI::Success();
        },
        "Print the ropekit, HDF5 and OpenBLAS versions and exit");
    app_.add_option("--threads", threads_, "Threads for OpenBLAS and our own loops (0 = all cores)")
        ->check(CLI::NonNegativeNumber);
    app_.add_flag("-q,--quiet", quiet_, "No progress or status lines on stderr");
    app_.get_formatter()->column_width(34);
}

Tool& Tool::single_threaded(const std::string& why) {
    app_.get_option("--threads")->description("Accepted, but this tool runs on one thread: " + why);
    return *this;
}

Tool& Tool::examples(const std::string& text) {
    app_.footer("\nExamples:\n" + text);
    return *this;
}

Tool& Tool::with_output() {
    return add_output(true);
}

Tool& Tool::with_optional_output() {
    return add_output(false);
}

Tool& Tool::add_output(bool required) {
    auto* output = app_.add_option("-o,--output", output_,
                                   required ? "Output file ('-' = standard output), required"
                                            : "Output file ('-' = standard output); without it "
                                              "the table alone is printed");
    if (required) require(output);
    app_.add_flag("--force", force_, "Replace an existing output (never an input)");
    return *this;
}

Tool& Tool::reads_hdf5() {
    app_.add_flag_callback(
        "--allow-external", [] { allow_external_hdf5(true); },
        "Let HDF5 inputs read other files (external storage, external links, virtual datasets) "
        "and load filter plugins from HDF5_PLUGIN_PATH; refused by default");
    return *this;
}

Tool& Tool::reads_bf16_bits() {
    read_int16_as_bf16(Int16AsBf16::marked_or_option);
    app_.add_flag_callback(
        "--bf16", [] { read_int16_as_bf16(Int16AsBf16::all_bf16); },
        "Read 16-bit integer datasets (int16, uint16) as bf16 bit patterns, as "
        "t.view(torch.int16).numpy() saves them; without it only datasets marked "
        "dtype=\"bfloat16\" are");
    return *this;
}

Tool& Tool::writes_text() {
    text_output_ = true;
    return *this;
}

CLI::Option* Tool::require(CLI::Option* option) {
    required_.push_back({{option}, option->get_name()});
    return option;
}

void Tool::require_one_of(std::vector<const CLI::Option*> options, const std::string& what) {
    required_.push_back({std::move(options), what});
}

RunContext Tool::context() const {
    RunContext context;
    context.tool = name_;
    context.command_line = command_line_;
    context.output = output_;
    context.force = force_;
    context.note = [this](const std::string& line) { note(line); };
    context.print = [this](const std::string& text) { print(text); };
    if (!quiet_) {
        auto line = std::make_shared<ProgressLine>(name_, ::isatty(STDERR_FILENO) != 0, stderr,
                                                   plain_progress_interval());
        context.progress = [line](std::size_t done, std::size_t total, const std::string& units) {
            line->update(done, total, units);
        };
    }
    return context;
}

void Tool::note(const std::string& line) const {
    if (quiet_) return;
    std::fflush(stdout);
    std::cerr << name_ << ": " << line << '\n';
}

void Tool::print(const std::string& text) const {
    if (output_ == "-") {
        if (!quiet_) std::cerr << text;
        return;
    }
    // A table that did not reach stdout (a full disk) is lost: an error, as write_text_output
    // treats a text output to "-", not a success.
    std::cout << text << std::flush;
    if (!std::cout) throw data_error("<stdout>", "", "write failed");
}

void Tool::report(const std::string& message) const {
    std::cout.flush();
    std::fflush(stdout);
    std::cerr << name_ << ": " << message << '\n';
}

namespace {

// Under an address-space limit (ulimit -v) OpenBLAS's pool threads, started when the library
// loads, can be stuck retrying to map their buffers; a normal exit would wait for them forever.
// Our outputs are committed and our temporaries removed by now, so leave without the library
// destructors (after LeakSanitizer's check, in sanitizer builds).
void leave_if_address_space_limited(int code) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
    __lsan_do_leak_check();
#endif
#elif defined(__SANITIZE_ADDRESS__)
    __lsan_do_leak_check();
#endif
    std::_Exit(code);
}

}  // namespace

int Tool::run(int argc, char** argv, const std::function<void()>& body) {
    const int code = parse_and_run(argc, argv, body);
    leave_if_address_space_limited(code);
    return code;
}

int Tool::parse_and_run(int argc, char** argv, const std::function<void()>& body) {
    for (int i = 0; i < argc; ++i) {
        if (i) command_line_ += ' ';
        command_line_ += shell_quote(i == 0 ? name_ : argv[i]);
    }
    try {
        app_.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app_.help();
        return 0;
    } catch (const CLI::Success&) {
        return 0;
    } catch (const CLI::ParseError& e) {
        report(std::string(e.what()) + " (see --help)");
        return static_cast<int>(ExitCode::usage);
    }
    for (const Requirement& requirement : required_) {
        const auto given = [](const CLI::Option* option) { return option->count() > 0; };
        if (std::none_of(requirement.one_of.begin(), requirement.one_of.end(), given)) {
            report(requirement.what + " is required (see --help)");
            return static_cast<int>(ExitCode::usage);
        }
    }
    if (const std::string refusal = terminal_output_refusal(output_, text_output_);
        !refusal.empty()) {
        report(refusal);
        return static_cast<int>(ExitCode::usage);
    }
    if (reads_terminal_input(app_)) note(kReadingTerminalNote);
    // Past `ulimit -f`, write() should fail with EFBIG (and we clean up the temporary file)
    // instead of the process being killed mid-write.
    std::signal(SIGXFSZ, SIG_IGN);
    install_interrupt_handler(name_);
    return run_body(body);
}

namespace {

// glibc serves blocks of 128 KiB and more (growing to 32 MiB) with fresh mmaps and returns them
// on free, so a tool that allocates a few MB of work buffers per block of work zero-filled new
// pages every time: 7,000 of rope-decay's 10,000 page faults (~15% of its time). Freed memory
// below these sizes is kept for reuse instead; peak RSS is unchanged (it is freed memory).
void keep_freed_memory_for_reuse() {
    constexpr int kMiB = 1 << 20;
    mallopt(M_MMAP_THRESHOLD, 64 * kMiB);
    mallopt(M_TRIM_THRESHOLD, 256 * kMiB);
}

}  // namespace

int Tool::run_body(const std::function<void()>& body) {
    try {
        keep_freed_memory_for_reuse();
        set_thread_count(threads_);
        body();
        std::cout.flush();
        outcome_decided();
        return 0;
    } catch (const Error& e) {
        outcome_decided();
        report(e.what());
        return static_cast<int>(e.code());
    } catch (const std::bad_alloc&) {
        outcome_decided();
        report("out of memory");
        return static_cast<int>(ExitCode::data);
    } catch (const std::exception& e) {
        outcome_decided();
        report(std::string("internal error: ") + e.what());
        return static_cast<int>(ExitCode::data);
    }
}

}  // namespace ropekit
