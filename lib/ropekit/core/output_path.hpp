#pragma once
// Rules every output follows, whatever its format (HDF5, safetensors, GGUF, directories):
// refuse to overwrite an input (always) or an existing output (without --force), and write to a
// temporary name beside the target that is renamed into place only when complete.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace ropekit {

struct WriteOptions {
    bool force = false;               // replace an existing output
    std::vector<std::string> inputs;  // paths the output must not be (refused even with force)
};

// Throws usage_error (exit 2) if `path` is one of `inputs` (same file or directory, by device
// and inode) or exists and !force; data_error if its directory is missing.
void check_output_path(const std::string& path, bool force, const std::vector<std::string>& inputs);

// check_output_path for a file output, checked before any work starts: also a usage_error if
// `path` is a directory, and data_error if its directory is not writable. "-" passes.
void check_file_output(const std::string& path, bool force, const std::vector<std::string>& inputs);
// data_error naming `what` unless `dir` is an existing, writable directory.
void check_output_directory(const std::string& dir, const std::string& what);

// Creates an empty file ".NAME.tmp-XXXXXX" in the target's directory and returns its path,
// registered with the interrupt handler (core/interrupt.hpp) until it is committed or removed.
// Throws data_error naming the target if the directory is not writable.
std::string make_temp_beside(const std::string& path);

// Opens `path` to write it from the start, creating it if needed; nullptr with errno on failure.
// Unlike fopen(path, "wb") it does not truncate a file that is already empty (such as our
// temporaries): ext4 flushes a truncated file's data when it is closed (auto_da_alloc), which
// added about 0.5 s per GB to every large output.
std::FILE* open_for_writing(const std::string& path);

// The same for a directory (for checkpoint directories): ".NAME.tmp-XXXXXX/".
std::string make_temp_dir_beside(const std::string& path);

// Moves a finished temporary file or directory onto `path`, replacing what is there when
// force allowed it. Directories are swapped through a second temporary name. The run is
// committing from here on: interrupt signals are held until it ends (core/interrupt.hpp).
void commit_temp(const std::string& temp, const std::string& path);

// Writes a whole text output (SVG, HTML, TSV) atomically; "-" writes it to stdout.
void write_text_output(const std::string& path, const std::string& content, bool force,
                       const std::vector<std::string>& inputs);

// RAII owner of a temporary output: removes it (recursively) unless released.
class TempOutput {
  public:
    explicit TempOutput(std::string path) : path_(std::move(path)) {}
    TempOutput(const TempOutput&) = delete;
    TempOutput& operator=(const TempOutput&) = delete;
    ~TempOutput();
    const std::string& path() const { return path_; }
    void commit_to(const std::string& target);  // commit_temp, then forget

  private:
    std::string path_;
};

// The outputs of one run, committed together: each is finished into a temporary beside its
// target first, and commit() renames them all. Destroyed before commit() (a later output failed,
// the disk filled), it removes every temporary, so a run leaves all of its outputs or none.
class OutputBatch {
  public:
    void add(std::unique_ptr<TempOutput> temp, std::string target);
    // Writes `content` into a temporary now (check_output_path first); "-" goes to stdout at
    // commit().
    void add_text(const std::string& path, const std::string& content, bool force,
                  const std::vector<std::string>& inputs);
    void commit();

  private:
    struct Pending {
        std::unique_ptr<TempOutput> temp;  // null for stdout
        std::string target, content;
    };
    std::vector<Pending> pending_;
};

}  // namespace ropekit
