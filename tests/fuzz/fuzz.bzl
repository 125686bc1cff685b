"""libFuzzer targets that also build, and replay their corpus, outside the fuzz build."""

load("//bazel:rwexport.bzl", "RWEXPORT_COPTS", "SANITIZER_DEPS")

def rwexport_fuzz_target(name, srcs, deps = []):
    """A fuzz target `name` (LLVMFuzzerTestOneInput in `srcs`) and `name`_corpus_test.

    With --config=fuzz the binary is a libFuzzer binary (clang, -fsanitize=fuzzer); in every
    other build (g++, asan, ...) it gets standalone_main.cc, which runs the target once over the
    files named on its command line. `name`_corpus_test replays corpus/`name`/ through the
    binary in any build, so the seeds stay valid inputs and regressions show in `bazel test`.
    """
    native.cc_binary(
        name = name,
        testonly = True,
        srcs = srcs,
        copts = RWEXPORT_COPTS,
        linkopts = select({
            "//tools/sanitizers:fuzz": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = deps + SANITIZER_DEPS + select({
            "//tools/sanitizers:fuzz": [],
            "//conditions:default": [":standalone_main"],
        }),
    )
    native.sh_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = ["run_corpus.sh"],
        args = [
            "$(location :%s)" % name,
            "tests/fuzz/corpus/" + name,
        ],
        data = [":" + name] + native.glob(["corpus/%s/**" % name]),
    )
