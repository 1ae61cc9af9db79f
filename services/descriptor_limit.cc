#include "services/descriptor_limit.h"

#include <sys/resource.h>

namespace switchboard::services {

DescriptorLimit RaiseDescriptorLimit() {
  DescriptorLimit limit;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return limit;
  if (rl.rlim_cur != rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    // Linux caps an infinite hard limit at fs.nr_open: then the hard limit
    // cannot be the soft one, and the soft one stays.
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      rl = raised;
      limit.raised = true;
    }
  }
  limit.soft = rl.rlim_cur;
  limit.hard = rl.rlim_max;
  return limit;
}

uint64_t DescriptorsNeeded(size_t max_connections, bool tls) {
  if (max_connections == 0) return 0;
  return static_cast<uint64_t>(max_connections) *
             (tls ? kDescriptorsPerTlsConnection : kDescriptorsPerConnection) +
         kDescriptorReserve;
}

}  // namespace switchboard::services
