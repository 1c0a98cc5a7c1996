// The viewer's start-up script, served as a file of its own so the page needs no inline script
// (the policy's script-src stays 'self' only). It is kept as text here rather than as a .js file
// beside this module because the build copies only compiled TypeScript into dist/.
//
// The page says which document to show (data-document-url on the mount point), so this script is
// the same for every deployment and can be cached like the vendor files.

export const INITIALIZER_SOURCE = `'use strict';
(function () {
  var root = document.getElementById('swagger-ui');
  if (!root || typeof SwaggerUIBundle !== 'function') return;
  window.ui = SwaggerUIBundle({
    url: root.getAttribute('data-document-url'),
    domNode: root,
    // BaseLayout without the standalone preset: no top bar with a free URL field, so the page
    // shows this API's document only.
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    // ?url= and ?configUrl= must not point the viewer at another document.
    queryConfigEnabled: false,
    // The public validator badge would send the document to an outside host.
    validatorUrl: null,
    // Every method may be tried out (the button is shown on each operation).
    supportedSubmitMethods: ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'],
    deepLinking: true,
    displayRequestDuration: true,
  });
})();
`;
