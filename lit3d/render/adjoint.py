"""The adjoint (reverse-mode) render of Mitsuba's projective integrators, without rendering the
primal image again.

Mitsuba's ``PSIntegrator.render_backward`` builds an AD-attached image of every gradient term and
traverses it from the image gradient. For the shading (continuous) term that image is a splat of
each sample's radiance into a film: the splat is a side effect, so Dr.Jit runs the whole primal
path-tracing kernel again before the adjoint kernel, and nothing reads its result. Here the
shading term instead gathers each sample's share of the image gradient (the adjoint of the
splat and the film's weight division, as Mitsuba's radiative-backpropagation integrators do) and
traverses from the samples' radiance: the same samples and the same derivatives, without the
primal kernel. The silhouette terms are Mitsuba's own.

``tests/test_render.py`` checks equal gradients against ``render_backward``;
``bench/render_backward.py`` times it.
"""

from __future__ import annotations

from typing import Any


def supports(integrator: Any) -> bool:
    """Whether :func:`render_backward` applies: a projective integrator whose shading term is
    differentiated through its AD graph (not radiative backpropagation), without AOVs."""
    from mitsuba.ad.integrators.common import PSIntegrator

    return (isinstance(integrator, PSIntegrator) and not integrator.radiative_backprop
            and not integrator.aov_names())


def render_backward(integrator: Any, scene: Any, grad_in: Any, seed: Any, spp: int = 0) -> None:
    """Accumulates the gradient image ``grad_in`` ((H, W, C) ``mi.TensorXf``) into the gradients
    of the scene's tracked variables, as ``integrator.render_backward(scene, None, grad_in,
    seed=seed, spp=spp)`` does (same sample counts, seeds and terms) for an integrator that
    :func:`supports`; sensor 0."""
    import drjit as dr
    import mitsuba as mi
    from mitsuba.ad.integrators.common import ADIntegrator

    sensor = scene.sensors()[0]
    film = sensor.film()
    sampler_spp = sensor.sampler().sample_count()
    sppc = integrator.override_spp(integrator.sppc, spp, sampler_spp)
    sppp = integrator.override_spp(integrator.sppp, spp, sampler_spp)
    sppi = integrator.override_spp(integrator.sppi, spp, sampler_spp)
    silhouettes = len(scene.silhouette_shapes()) > 0

    def enqueue(image) -> None:
        dr.set_grad(image, grad_in)
        dr.enqueue(dr.ADMode.Backward, image)

    # Silhouette terms: Mitsuba's own (``PSIntegrator.render_ad``), same seeds. They go first,
    # as in Mitsuba: enqueued before the silhouettes' set-up, the shading term's radiance lost
    # its gradients (measured: the tests fail in that order).
    if sppp > 0 and silhouettes:
        with dr.suspend_grad():
            integrator.proj_detail.init_primarily_visible_silhouette(scene, sensor)
        sampler, n = integrator.prepare(sensor, 0xffffffff ^ seed, sppp, [])
        enqueue(integrator.render_primarily_visible_silhouette(scene, sensor, sampler, n))
    if sppi > 0 and silhouettes:
        with dr.suspend_grad():
            integrator.proj_detail.init_indirect_silhouette(scene, sensor, 0xafafafaf ^ seed)
        sampler, n = integrator.prepare(sensor, 0xaa00aa00 ^ seed, sppi, [])
        enqueue(integrator.render_indirect_silhouette(scene, sensor, sampler, n))

    # Shading term: each sample's image-gradient share, then the samples' radiance traversed.
    if sppc > 0:
        with dr.suspend_grad():
            sampler, n = integrator.prepare(sensor, seed, sppc, [])
            ray, weight, pos = integrator.sample_rays(scene, sensor, sampler)
            with dr.resume_grad():
                unit = dr.full(mi.Spectrum, 1.0, dr.width(ray))
                dr.enable_grad(unit)
                block = film.create_block()
                block.set_coalesce(block.coalesce() and n >= 4)  # as render_ad splats it
                ADIntegrator._splat_to_block(block, film, pos, value=unit * weight, weight=1.0,
                                             alpha=1.0, aovs=[], wavelengths=ray.wavelengths)
                film.put_block(block)
                image = film.develop()
                dr.set_grad(image, grad_in)
                dr.enqueue(dr.ADMode.Backward, image)
                dr.traverse(dr.ADMode.Backward)
                share = dr.grad(unit)  # d image / d radiance of each sample, times grad_in
            film.clear()
            radiance, _, _, _ = integrator.sample(
                mode=dr.ADMode.Backward, scene=scene, sampler=sampler, ray=ray,
                depth=mi.UInt32(0), δL=None, state_in=None, active=mi.Bool(True),
                project=False, si_shade=None)
        with dr.resume_grad():
            dr.set_grad(radiance, share)
            dr.enqueue(dr.ADMode.Backward, radiance)
    dr.traverse(dr.ADMode.Backward)
    dr.eval()
