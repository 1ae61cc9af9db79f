"""scripts/check-deps against copies of the source tree with one planted violation each: the
check fails and names exactly the planted violation; the allow file excuses only what it lists
and fails on entries that match nothing. SB_SOURCE_DIR: the tree (default: this file's ../..)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get(
    "SB_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.path.join(SOURCE_DIR, "scripts", "check-deps")
READ = (".h", ".hh", ".hpp", ".cc", ".cpp", ".cxx", ".inc", "CMakeLists.txt", ".allow")


def skip(directory, names):
    """What check-deps does not read: other files, build trees, hidden and vendored dirs."""
    top = os.path.samefile(directory, SOURCE_DIR)
    return [n for n in names
            if n.startswith(".") or n in ("node_modules", "__pycache__")
            or (top and n.startswith("build"))
            or (not os.path.isdir(os.path.join(directory, n)) and not n.endswith(READ))]


def copy_tree(dst):
    """The files check-deps reads (sources, CMakeLists.txt, the allow file)."""
    shutil.copytree(SOURCE_DIR, dst, ignore=skip, dirs_exist_ok=True)


class CheckDepsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="check-deps-")
        self.root = self.tmp.name
        copy_tree(self.root)
        self.baseline = self.ids()

    def tearDown(self):
        self.tmp.cleanup()

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, "--root", self.root, *args],
                              capture_output=True, text=True, timeout=60)

    def ids(self):
        result = self.run_script("--ids")
        self.assertEqual(result.returncode, 0, result.stderr)
        return set(result.stdout.splitlines())

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def append(self, rel, text):
        with open(os.path.join(self.root, rel), "a") as f:
            f.write(text)

    def assertPlanted(self, *expected):
        """Exactly `expected` is new, and the check (with the tree's allow file) fails on it."""
        self.assertEqual(self.ids() - self.baseline, set(expected))
        result = self.run_script()
        self.assertEqual(result.returncode, 1, result.stdout)
        for violation in expected:
            self.assertIn("VIOLATION  " + violation, result.stdout)

    def test_the_tree_passes_with_its_allow_file(self):
        result = subprocess.run([sys.executable, SCRIPT, "--root", SOURCE_DIR],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_edge_including_the_bus(self):
        self.write("edge/planted.cc", '#include "bus/bus.h"\n#include "switchboard/v1/bus.pb.h"\n')
        self.assertPlanted("edge-no-bus: edge/planted.cc -> bus/bus.h",
                           "edge-no-bus: edge/planted.cc -> switchboard/v1/bus.pb.h")

    def test_edge_linking_the_bus(self):
        self.append("edge/CMakeLists.txt", "target_link_libraries(sb_edge PRIVATE sb_bus_nats)\n")
        planted = self.ids() - self.baseline
        self.assertIn("edge-no-bus: sb_edge -> sb_bus_nats", planted)
        self.assertIn("edge-no-bus: sb_edge -> sb_bus", planted)  # through sb_bus_nats
        self.assertEqual(self.run_script().returncode, 1)

    def test_broker_including_beast(self):
        self.write("broker/planted.cc", "#include <boost/beast/http.hpp>\n")
        self.assertPlanted("broker-no-beast: broker/planted.cc -> boost/beast/http.hpp")

    def test_broker_linking_the_edge(self):
        self.append("broker/CMakeLists.txt",
                    "target_link_libraries(sb_broker_index PUBLIC sb_edge)  # planted\n")
        planted = self.ids() - self.baseline
        self.assertIn("broker-no-beast: sb_broker_index -> sb_edge", planted)
        self.assertIn("broker-no-beast: sb_broker_index -> Boost::boost", planted)
        self.assertIn("broker-no-beast: sb_broker -> sb_edge", planted)  # links sb_broker_index
        self.assertEqual(self.run_script().returncode, 1)

    def test_base_including_anything_but_the_standard_library(self):
        self.write("base/planted.h", '#include <vector>\n#include "edge/ids.h"\n'
                   '#include <absl/container/flat_hash_set.h>\n#include <sys/socket.h>\n')
        self.assertPlanted("base-std-only: base/planted.h -> edge/ids.h",
                           "base-std-only: base/planted.h -> absl/container/flat_hash_set.h",
                           "base-std-only: base/planted.h -> sys/socket.h")

    def test_codec_including_boost_through_a_header(self):
        self.write("edge/engineio/planted.h", "#include <boost/asio/buffer.hpp>\n")
        self.append("edge/engineio/packet.cc", '#include "edge/engineio/planted.h"\n')
        self.assertPlanted("codecs-no-boost: edge/engineio/planted.h -> boost/asio/buffer.hpp")

    def test_codec_linking_boost(self):
        self.append("edge/CMakeLists.txt", "target_link_libraries(sb_eio_codec PUBLIC Boost::boost)\n")
        planted = self.ids() - self.baseline
        self.assertIn("codecs-no-boost: sb_eio_codec -> Boost::boost", planted)
        self.assertIn("codecs-no-boost: sb_sio_codec -> Boost::boost", planted)  # links it
        self.assertEqual(self.run_script().returncode, 1)

    def test_http_including_engineio(self):
        self.write("edge/http/planted.cc", '#include "edge/engineio/session.h"\n')
        self.assertPlanted("http-no-engineio: edge/http/planted.cc -> edge/engineio/session.h")

    def test_socketio_naming_a_concrete_transport(self):
        self.write("edge/socketio/planted.cc",
                   '#include "edge/engineio/transports/polling.h"\n'
                   "// A comment may say WebSocketTransport; a string too:\n"
                   'const char* kName = "PollingTransport";\n'
                   "void F(eio::WebSocketTransport& t) { t.Write(); }\n")
        self.assertPlanted(
            "socketio-no-concrete-transport: edge/socketio/planted.cc -> "
            "edge/engineio/transports/polling.h",
            "socketio-no-concrete-transport: edge/socketio/planted.cc -> WebSocketTransport")

    def test_socketio_may_use_the_transport_interface(self):
        self.write("edge/socketio/planted.cc",
                   '#include "edge/engineio/transport.h"\n'
                   '#include "edge/engineio/transports/transport.h"\n'
                   '#include "edge/engineio/websocket_frame.h"\n'
                   "void F(eio::Transport& t, eio::WebSocketFrame f) { t.Send(f); }\n")
        self.assertEqual(self.ids() - self.baseline, set())

    def test_socketio_naming_a_transport_class_by_its_namespace(self):
        self.write("edge/socketio/planted.cc", "auto* p = dynamic_cast<eio::Polling*>(t);\n")
        self.assertPlanted("socketio-no-concrete-transport: edge/socketio/planted.cc -> eio::Polling")

    def test_allow_file_excuses_only_its_entries_and_fails_when_stale(self):
        self.write("edge/http/planted.cc", '#include "edge/engineio/session.h"\n')
        planted = "http-no-engineio: edge/http/planted.cc -> edge/engineio/session.h"
        allow = os.path.join(self.root, "planted.allow")
        with open(allow, "w") as f:
            f.write("# comment\n" + "\n".join(sorted(self.baseline | {planted})) + "\n")
        result = self.run_script("--allow", allow)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertIn("allowed    " + planted, result.stdout)

        os.remove(os.path.join(self.root, "edge/http/planted.cc"))
        result = self.run_script("--allow", allow)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("STALE", result.stdout)
        self.assertIn(planted, result.stdout)

    def test_a_rule_whose_target_is_gone_fails(self):
        path = os.path.join(self.root, "edge/CMakeLists.txt")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("sb_eio_codec", "sb_renamed_codec"))
        planted = self.ids() - self.baseline
        self.assertIn("codecs-no-boost: sb_eio_codec -> (no such CMake target)", planted)


if __name__ == "__main__":
    unittest.main(verbosity=2)
