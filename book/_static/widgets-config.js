// Loaded after require.js and before widgets/embed-amd.js on pages with saved ipywidgets
// (see nb_ipywidgets_js in _config.yml). embed-amd.js defines AMD modules named
// "@jupyter-widgets/..." and loads its icon fonts relative to each module's URL, which
// RequireJS would otherwise resolve against the page's own folder (404s). Map the modules
// to _static/widgets/, where scripts/fetch_widget_js.sh puts embed-amd.js and its fonts.
(function () {
  var base = new URL("widgets/", document.currentScript.src).href;
  var paths = {"@jupyter-widgets/html-manager/dist/libembed-amd": base + "libembed-amd"};
  ["base", "base7", "controls", "controls7", "html-manager", "output"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = base + name;
  });
  window.require.config({paths: paths});
})();
