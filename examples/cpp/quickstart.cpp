/* SPDX-License-Identifier: MIT */
// quickstart.cpp - the C++ wrapper in one page: fit a small Real-NVP flow
// to the two-moons data, sample from it, score points, round-trip the
// model (with its scaler) through a file and a memory buffer, and build a
// chain from layers of other kinds.
//
//   make cpp-example && ./build/cpp/quickstart [model-path [steps]]
#include <nvpflow.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    const std::string path = argc > 1 ? argv[1] : "quickstart.nvp";
    const int steps = argc > 2 ? std::atoi(argv[2]) : 500;
    try {
        if (!nvp::version_matches())
            std::fprintf(stderr, "warning: header %s, library %s\n",
                         nvp::header_version_string, nvp::version_string());

        // Data: 2000 noisy two-moons points, standardised per axis.
        nvp::Rng rng(42);
        std::vector<float> data = nvp::two_moons(rng, 2000, 0.05f);
        nvp::Scaler scaler(2);
        scaler.fit(data);
        data = scaler.transform(data);

        // Model: 8 alternating half-split couplings, conditioners 2 x 128
        // wide, each layer starting as the identity map.
        nvp::Chain flow =
            nvp::Chain::alternating(2, 8, {128, 128}, NVP_INIT_ZERO_OUTPUT, rng);
        flow.set_log_scale_clamp(3.0f);
        nvp::Adam adam(flow.num_params());
        adam.set_lr(2e-3f);
        std::printf("nvpflow %s: %zu layers, %zu parameters\n",
                    nvp::version_string(), flow.num_layers(), flow.num_params());

        // Training: a few hundred minibatch steps.
        float loss = 0.0f, avg = 0.0f;
        for (int step = 1; step <= steps; step++) {
            loss = flow.train_step(adam, rng, data, 256);
            avg += loss;
            if (step % 50 == 0) {
                std::printf("step %3d  mean NLL over the last 50 batches %.4f\n",
                            step, static_cast<double>(avg / 50.0f));
                avg = 0.0f;
            }
        }

        const std::vector<float> lp_data = flow.log_prob(data);
        double nll = 0.0;
        for (float v : lp_data)
            nll -= static_cast<double>(v);
        std::printf("mean NLL of all %zu training points %.4f "
                    "(a standard normal scores %.4f)\n",
                    lp_data.size(), nll / static_cast<double>(lp_data.size()),
                    2.8378770664093453); // log(2 pi) + 1

        // Sampling: points in standardised units with their log densities,
        // mapped back to the data's units.
        std::vector<float> lp;
        std::vector<float> z = flow.sample(rng, 5, &lp);
        std::vector<float> xy = scaler.inverse_transform(z);
        std::printf("samples (data units) and log p (standardised units):\n");
        for (std::size_t i = 0; i < lp.size(); i++)
            std::printf("  (% .3f, % .3f)  %.3f\n", static_cast<double>(xy[2 * i]),
                        static_cast<double>(xy[2 * i + 1]),
                        static_cast<double>(lp[i]));

        // Scoring: the density in data units needs the scaler's log|det|.
        // (0, 1) and (1, -0.5) lie on the moons, (0.5, 0.25) between them.
        const std::vector<float> points = {0.0f, 1.0f, 1.0f, -0.5f, 0.5f, 0.25f};
        std::vector<float> lp_pts = flow.log_prob(scaler.transform(points));
        for (std::size_t i = 0; i < lp_pts.size(); i++)
            std::printf("log p(%.2f, %.2f) = %.3f\n",
                        static_cast<double>(points[2 * i]),
                        static_cast<double>(points[2 * i + 1]),
                        static_cast<double>(lp_pts[i]) - scaler.log_det());

        // Saving and loading: through a file (with the scaler) and through
        // a memory buffer; both give bitwise the same model.
        flow.save(path, &scaler);
        std::optional<nvp::Scaler> loaded_scaler;
        nvp::Chain loaded = nvp::Chain::load(path, loaded_scaler);
        nvp::Bytes bytes = flow.save_buffer();
        nvp::Chain from_buffer = nvp::Chain::load(bytes);

        const std::vector<float> a = flow.log_prob(z);
        const std::vector<float> b = loaded.log_prob(z);
        const std::vector<float> c = from_buffer.log_prob(z);
        const bool same = a == b && a == c && loaded_scaler &&
                          loaded_scaler->mean() == scaler.mean() &&
                          loaded_scaler->sd() == scaler.sd();
        std::printf("saved %s (%zu bytes in memory); reloaded model %s\n",
                    path.c_str(), bytes.size(),
                    same ? "matches bitwise" : "DIFFERS");
        std::remove(path.c_str());

        // Layers of every kind: a linear layer set from the data (it whitens
        // them) under couplings that start as the identity, with
        // permutations between them, is the full-covariance Gaussian fit
        // before any training.  The chain takes the layers.
        std::vector<nvp::Layer> layers;
        layers.push_back(nvp::Layer::linear(2));
        for (int k = 0; k < 4; k++) {
            layers.push_back(nvp::Coupling::half(2, k % 2 == 1, {64, 64},
                                                 NVP_INIT_ZERO_OUTPUT, rng));
            layers.push_back(nvp::Layer::random_permutation(2, rng));
        }
        nvp::Chain gauss = nvp::Chain::from_layers(std::move(layers));
        gauss.init_from_data(data);
        double gauss_nll = 0.0;
        for (float v : gauss.log_prob(data))
            gauss_nll -= static_cast<double>(v);
        std::printf("%zu layers (first a %s); untrained, initialised from the "
                    "data: mean NLL %.4f\n",
                    gauss.num_layers(), std::string(gauss.layer_kind(0)).c_str(),
                    gauss_nll / static_cast<double>(lp_data.size()));

        // Errors are exceptions carrying the library's code and message.
        try {
            flow.log_prob(std::vector<float>{1.0f, 2.0f, 3.0f});
        } catch (const nvp::Error &e) {
            std::printf("as expected: %s (code %d)\n", e.what(), e.code());
        }
        return same && std::isfinite(loss) ? 0 : 1;
    } catch (const nvp::Error &e) {
        std::fprintf(stderr, "quickstart: %s\n", e.what());
        return 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "quickstart: %s\n", e.what());
        return 1;
    }
}
