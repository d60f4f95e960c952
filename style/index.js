import './base.css';
import './toolbar.css';
import './status.css';
import './history.css';
